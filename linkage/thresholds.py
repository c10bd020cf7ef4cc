"""Thresholds and the three outcomes of matching a record against the index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from linkage.errors import ModelError
from linkage.scoring import probability_from_weight, weight_from_probability

Outcome = Literal["link", "review", "new_person"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Match weights (log2 odds) at and above which a pair links, or goes to review.

    Below `review_weight` the record becomes a new person. Stewards usually think in
    probabilities: `from_probabilities(link=0.999, review=0.9)`.
    """

    link_weight: float
    review_weight: float

    def __post_init__(self) -> None:
        if self.review_weight > self.link_weight:
            raise ModelError("the review threshold must not be above the link threshold")

    @classmethod
    def from_probabilities(cls, link: float, review: float) -> Thresholds:
        return cls(weight_from_probability(link), weight_from_probability(review))

    @property
    def link_probability(self) -> float:
        return probability_from_weight(self.link_weight)

    @property
    def review_probability(self) -> float:
        return probability_from_weight(self.review_weight)

    def outcome(self, match_weight: float) -> Outcome:
        if match_weight >= self.link_weight:
            return "link"
        if match_weight >= self.review_weight:
            return "review"
        return "new_person"
