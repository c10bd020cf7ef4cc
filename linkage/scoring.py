"""The compiled Fellegi-Sunter scorer used on the stream.

A `CompiledModel` holds what Splink trained (the prior and, per comparison level, m, u
and the match weight log2(m/u)) and scores a pair of normalised identities in pure Python:
no database, microseconds per pair. Its evidence names fields, levels and weights, never
values, so it can go into an audit record.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from linkage.comparisons import COMPARISONS, Comparison, Gamma, compile_gamma
from linkage.errors import ModelError
from linkage.identity import NormalisedIdentity


@dataclass(frozen=True, slots=True)
class LevelParameters:
    label: str
    m: float | None
    """None for the null level (it carries no evidence)."""
    u: float | None
    weight: float
    """log2(m/u), 0 for the null level."""


@dataclass(frozen=True, slots=True)
class ComparisonParameters:
    name: str
    levels: tuple[LevelParameters, ...]


@dataclass(frozen=True, slots=True)
class FieldEvidence:
    """How one field compared: its level's label and match weight. Never the values."""

    field: str
    level: str
    weight: float


@dataclass(frozen=True, slots=True)
class PairScore:
    match_weight: float
    """Prior weight plus the sum of the field weights (Splink's `match_weight`)."""
    evidence: tuple[FieldEvidence, ...]

    @property
    def match_probability(self) -> float:
        return probability_from_weight(self.match_weight)


def probability_from_weight(weight: float) -> float:
    if weight > 1000:
        return 1.0
    odds = 2.0 ** weight
    return odds / (1.0 + odds)


def weight_from_probability(probability: float) -> float:
    if not 0.0 < probability < 1.0:
        raise ModelError("a probability threshold must be strictly between 0 and 1")
    return math.log2(probability / (1.0 - probability))


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """Trained parameters over the comparisons in `linkage.comparisons`."""

    probability_two_random_records_match: float
    comparisons: tuple[ComparisonParameters, ...]
    _compiled: tuple[tuple[Gamma, str, tuple[tuple[str, float], ...]], ...] = field(
        init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        check_fits(self, COMPARISONS)
        compiled = tuple(
            (compile_gamma(definition), params.name,
             tuple((lv.label, lv.weight) for lv in params.levels))
            for definition, params in zip(COMPARISONS, self.comparisons, strict=True))
        object.__setattr__(self, "_compiled", compiled)

    @property
    def prior_weight(self) -> float:
        lam = self.probability_two_random_records_match
        return math.log2(lam / (1.0 - lam))

    def match_weight(self, left: NormalisedIdentity, right: NormalisedIdentity) -> float:
        """The pair's match weight alone: `score(...).match_weight` without building the
        evidence (scoring every blocked candidate needs only this)."""
        total = self.prior_weight
        for gamma_of, _name, levels in self._compiled:
            total += levels[gamma_of(left, right)][1]
        return total

    def score(self, left: NormalisedIdentity, right: NormalisedIdentity) -> PairScore:
        total = self.prior_weight
        evidence = []
        for gamma_of, name, levels in self._compiled:
            label, weight = levels[gamma_of(left, right)]
            total += weight
            evidence.append(FieldEvidence(name, label, weight))
        return PairScore(total, tuple(evidence))

    def to_json(self) -> str:
        return json.dumps({
            "format": "handoff-linkage-model/1",
            "probability_two_random_records_match": self.probability_two_random_records_match,
            "comparisons": [
                {"name": c.name, "levels": [
                    {"label": lv.label, "m": lv.m, "u": lv.u, "weight": lv.weight}
                    for lv in c.levels]}
                for c in self.comparisons],
        }, indent=1)

    @classmethod
    def from_json(cls, text: str) -> CompiledModel:
        try:
            doc = json.loads(text)
            if doc.get("format") != "handoff-linkage-model/1":
                raise ModelError("not a handoff-linkage-model/1 document")
            return cls(
                probability_two_random_records_match=float(
                    doc["probability_two_random_records_match"]),
                comparisons=tuple(
                    ComparisonParameters(c["name"], tuple(
                        LevelParameters(lv["label"], lv["m"], lv["u"], float(lv["weight"]))
                        for lv in c["levels"]))
                    for c in doc["comparisons"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"linkage model document is malformed: {exc}") from exc


def check_fits(model: CompiledModel, comparisons: tuple[Comparison, ...]) -> None:
    """Raise ModelError unless the model's levels are exactly the defined comparison levels."""
    lam = model.probability_two_random_records_match
    if not 0.0 < lam < 1.0:
        raise ModelError("probability_two_random_records_match must be in (0, 1)")
    names = [c.name for c in model.comparisons]
    expected = [c.name for c in comparisons]
    if names != expected:
        raise ModelError(f"model comparisons {names} do not match the defined {expected}; "
                         f"retrain the model")
    for params, definition in zip(model.comparisons, comparisons, strict=True):
        labels = [lv.label for lv in params.levels]
        if labels != [lv.label for lv in definition.levels]:
            raise ModelError(f"model levels of {params.name} {labels} do not match the "
                             f"defined levels; retrain the model")
        for lv in params.levels:
            if not math.isfinite(lv.weight):
                raise ModelError(f"level {lv.label!r} of {params.name} has a non-finite "
                                 f"weight")
