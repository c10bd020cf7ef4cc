"""Retraining: fit a new model on the index, report how links would change, then apply.

`propose` trains a new model with Splink on the index's records and re-scores every
blocked pair of records with the model in use and the new one, counting pairs whose
outcome (link / review / new person) would change. Nothing changes until `apply` swaps
the resolver's model; `apply` can also open review items for pairs of different persons
that the new model would link, so a clerk decides instead of a silent re-link. Pairs of
one person that the new model would no longer link are listed for a steward to unlink.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from linkage.blocking import blocking_keys
from linkage.events import ReviewOpened
from linkage.index import PersonIndex
from linkage.resolver import PersonResolver
from linkage.scoring import CompiledModel, PairScore
from linkage.splink_model import TrainingOptions, train
from linkage.thresholds import Outcome, Thresholds


@dataclass(frozen=True, slots=True)
class PairChange:
    """One pair of records whose outcome the new model changes (keys, never values)."""

    record_key: str
    other_record_key: str
    same_person_now: bool
    before: Outcome
    after: Outcome
    new_score: PairScore


@dataclass(frozen=True, slots=True)
class RetrainProposal:
    model: CompiledModel
    splink_model: dict[str, Any]
    pairs_scored: int
    transitions: tuple[tuple[Outcome, Outcome, int], ...]
    """(before, after, number of pairs) for every changed outcome."""
    changes: tuple[PairChange, ...]

    @property
    def newly_linked(self) -> tuple[PairChange, ...]:
        return tuple(c for c in self.changes if c.after == "link")

    @property
    def no_longer_linked(self) -> tuple[PairChange, ...]:
        return tuple(c for c in self.changes if c.before == "link")


def propose(index: PersonIndex, current: CompiledModel, thresholds: Thresholds,
            options: TrainingOptions | None = None,
            candidate_limit: int = 500) -> RetrainProposal:
    """Train on the index and compare; changes nothing."""
    records = list(index.iter_records())
    new_model, splink_json = train(((r.record_key, r.identity) for r in records), options)
    transitions: Counter[tuple[Outcome, Outcome]] = Counter()
    changes = []
    scored = 0
    for record in records:
        for other in index.candidates(blocking_keys(record.identity), candidate_limit):
            if other.record_key <= record.record_key:
                continue  # each unordered pair once
            scored += 1
            old = current.score(record.identity, other.identity)
            new = new_model.score(record.identity, other.identity)
            before = thresholds.outcome(old.match_weight)
            after = thresholds.outcome(new.match_weight)
            if before != after:
                transitions[(before, after)] += 1
                changes.append(PairChange(
                    record.record_key, other.record_key,
                    record.person_id is not None and record.person_id == other.person_id,
                    before, after, new))
    return RetrainProposal(
        new_model, splink_json, scored,
        tuple((b, a, n) for (b, a), n in sorted(transitions.items())), tuple(changes))


def apply(resolver: PersonResolver, proposal: RetrainProposal,
          open_reviews: bool = True) -> tuple[ReviewOpened, ...]:
    """Use the new model from now on; optionally queue newly linking pairs for review."""
    opened = []
    if open_reviews:
        seen: set[tuple[str, str]] = set()
        for change in proposal.newly_linked:
            if change.same_person_now:
                continue
            other = resolver.index.record(change.other_record_key)
            if other is None or other.person_id is None:
                continue
            if (change.record_key, other.person_id) in seen:
                continue
            seen.add((change.record_key, other.person_id))
            opened.append(resolver.open_review(
                change.record_key, other.person_id, change.new_score,
                "a retrained model links this record to another person"))
    resolver.use_model(proposal.model)
    return tuple(opened)
