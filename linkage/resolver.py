"""The linkage engine: resolve an identity record to a person id, on the stream.

`resolve` runs the deterministic rules, then blocks the record against the index (a
handful of candidates) and scores them with the compiled model; the best person decides
the outcome: link, review (a provisional new person until a clerk decides) or a new
person. Every change is a `LinkageEvent` applied to the index; clerical changes (review
decisions, unlink, merge, undo) return `Rekey`s telling the caller which records' events
now belong to another person from which seq on.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from linkage.blocking import blocking_keys
from linkage.errors import LinkageError, ReviewStateError, UnknownPersonError, UnknownRecordError
from linkage.events import (
    LinkageEvent,
    Linked,
    Merged,
    RecordAdded,
    ReviewDecision,
    ReviewOpened,
    ReviewResolved,
    Unlinked,
)
from linkage.identity import IdentityRecord, NormalisedIdentity, normalise
from linkage.index import IndexedRecord, PersonIndex
from linkage.person_ids import new_person_id
from linkage.rules import exact_name_and_dob
from linkage.scoring import CompiledModel, FieldEvidence, PairScore
from linkage.thresholds import Outcome, Thresholds

ResolveMethod = Literal["agency_id", "exact_name_dob", "probabilistic", "new_person",
                        "provisional"]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What `resolve` decided for one identity record."""

    record_key: str
    person_id: str
    outcome: Outcome
    method: ResolveMethod
    match_weight: float | None
    """The best candidate's match weight (None when there was no candidate to score)."""
    evidence: tuple[FieldEvidence, ...]
    review_id: str | None
    seq: int
    """The index's seq after this resolution; store it with the event it resolved."""
    events: tuple[LinkageEvent, ...]


@dataclass(frozen=True, slots=True)
class Rekey:
    """Events of `record_key` resolved at seq >= `since_seq` (and before `at_seq`) were
    keyed by `from_person_id`; from now on they belong to `to_person_id`."""

    record_key: str
    from_person_id: str
    to_person_id: str
    since_seq: int
    at_seq: int


@dataclass(frozen=True, slots=True)
class ClericalChange:
    """The events a clerical operation applied and the re-keying it implies."""

    events: tuple[LinkageEvent, ...]
    rekeys: tuple[Rekey, ...]


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A person's best-scoring record among the candidates: its weight, whether name and
    date of birth agree exactly, and the identity scored against (for the evidence,
    worked out only for the candidates a decision names)."""

    person_id: str
    match_weight: float
    exact: bool
    identity: NormalisedIdentity


def new_review_id() -> str:
    return "rv_" + base64.b32encode(secrets.token_bytes(10)).decode().lower()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PersonResolver:
    """Resolves records to person ids against one index. Calls are serialised."""

    def __init__(self, index: PersonIndex, model: CompiledModel, thresholds: Thresholds,
                 clock: Callable[[], dt.datetime] = _utc_now,
                 candidate_limit: int = 500) -> None:
        self.index = index
        self.model = model
        self.thresholds = thresholds
        self._clock = clock
        self._candidate_limit = candidate_limit
        self._lock = threading.Lock()

    # -- the stream -------------------------------------------------------------------------

    def resolve(self, record: IdentityRecord) -> Resolution:
        identity = normalise(record)
        key = record.agency_id.key
        with self._lock:
            existing = self.index.record(key)
            if existing is not None and existing.person_id is not None:
                events: list[LinkageEvent] = []
                if existing.identity != identity:
                    events.append(RecordAdded(self._next_seq(events), self._clock(), key,
                                              identity))
                    self.index.apply(events)
                return Resolution(key, existing.person_id, "link", "agency_id", None, (),
                                  None, self.index.last_seq(), tuple(events))
            return self._match_new(key, identity)

    def score_candidates(self, identity: NormalisedIdentity,
                         exclude_key: str | None = None) -> list[_Candidate]:
        """Best score per person among the blocked candidates, best first."""
        best: dict[str, _Candidate] = {}
        for cand in self.index.candidates(blocking_keys(identity), self._candidate_limit):
            if cand.person_id is None or cand.record_key == exclude_key:
                continue
            weight = self.model.match_weight(identity, cand.identity)
            exact = exact_name_and_dob(identity, cand.identity)
            held = best.get(cand.person_id)
            if held is None or (exact, weight) > (held.exact, held.match_weight):
                best[cand.person_id] = _Candidate(cand.person_id, weight, exact,
                                                  cand.identity)
        return sorted(best.values(), key=lambda c: c.match_weight, reverse=True)

    def _match_new(self, key: str, identity: NormalisedIdentity) -> Resolution:
        ranked = self.score_candidates(identity, exclude_key=key)
        exact = [c for c in ranked if c.exact]
        events: list[LinkageEvent] = [
            RecordAdded(self._next_seq([]), self._clock(), key, identity)]
        top = exact[0] if exact else (ranked[0] if ranked else None)
        weight = top.match_weight if top else None
        evidence = self.model.score(identity, top.identity).evidence if top else ()
        review_reason: str | None = None
        if len(exact) == 1:
            return self._link(events, key, identity, exact[0], "exact_name_dob")
        if len(exact) > 1:
            review_reason = "exact name and date of birth match more than one person"
        elif top is not None:
            outcome = self.thresholds.outcome(top.match_weight)
            second = ranked[1] if len(ranked) > 1 else None
            if outcome == "link" and second is not None and (
                    self.thresholds.outcome(second.match_weight) == "link"):
                # Linked to the best; whether the two persons are one is a clerk's call.
                return self._link(events, key, identity, top, "probabilistic",
                                  also_review=second)
            if outcome == "link":
                return self._link(events, key, identity, top, "probabilistic")
            elif outcome == "review":
                review_reason = "match weight between the review and link thresholds"
        person_id = new_person_id()
        if review_reason is None or top is None:
            events.append(Linked(self._next_seq(events), self._clock(), key, person_id,
                                 "new_person", weight, evidence))
            self.index.apply(events)
            return Resolution(key, person_id, "new_person", "new_person", weight, evidence,
                              None, self.index.last_seq(), tuple(events))
        review_id = new_review_id()
        events.append(Linked(self._next_seq(events), self._clock(), key, person_id,
                             "provisional", weight, evidence))
        events.append(ReviewOpened(self._next_seq(events), self._clock(), review_id, key,
                                   top.person_id, top.match_weight, evidence,
                                   review_reason))
        self.index.apply(events)
        return Resolution(key, person_id, "review", "provisional", weight, evidence,
                          review_id, self.index.last_seq(), tuple(events))

    def _link(self, events: list[LinkageEvent], key: str, identity: NormalisedIdentity,
              cand: _Candidate, method: Literal["exact_name_dob", "probabilistic"],
              also_review: _Candidate | None = None) -> Resolution:
        evidence = self.model.score(identity, cand.identity).evidence
        events.append(Linked(self._next_seq(events), self._clock(), key, cand.person_id,
                             method, cand.match_weight, evidence))
        review_id = None
        if also_review is not None:
            review_id = new_review_id()
            events.append(ReviewOpened(
                self._next_seq(events), self._clock(), review_id, key,
                also_review.person_id, also_review.match_weight,
                self.model.score(identity, also_review.identity).evidence,
                "the record also scores above the link threshold with another person"))
        self.index.apply(events)
        return Resolution(key, cand.person_id, "link", method, cand.match_weight,
                          evidence, review_id, self.index.last_seq(),
                          tuple(events))

    def use_model(self, model: CompiledModel) -> None:
        """Score with `model` from the next record on (see `linkage.retrain`)."""
        with self._lock:
            self.model = model

    def open_review(self, record_key: str, candidate_person_id: str, score: PairScore,
                    reason: str) -> ReviewOpened:
        """Queue a record and a person for a clerk's decision (e.g. after retraining)."""
        with self._lock:
            self._require(record_key)
            event = ReviewOpened(self._next_seq([]), self._clock(), new_review_id(),
                                 record_key, candidate_person_id, score.match_weight,
                                 score.evidence, reason)
            self.index.apply([event])
            return event

    # -- clerical operations ----------------------------------------------------------------

    def resolve_review(self, review_id: str, decision: ReviewDecision,
                       by: str) -> ClericalChange:
        """Record a clerk's decision. `same` merges the record's person into the candidate."""
        with self._lock:
            item = self.index.review(review_id)
            if item is None or item.status != "open":
                raise ReviewStateError(f"review {review_id} does not exist or is not open")
            events: list[LinkageEvent] = [
                ReviewResolved(self._next_seq([]), self._clock(), review_id, decision, by)]
            if decision == "same":
                record = self._require(item.record_key)
                target = self.current_person(item.candidate_person_id)
                if record.person_id is not None and record.person_id != target:
                    events.append(self._merge_event(record.person_id, target, by,
                                                    f"review {review_id}", events))
            return self._apply_clerical(events)

    def unlink(self, record_key: str, by: str, reason: str) -> ClericalChange:
        """Take a record off its person and give it a new person id."""
        with self._lock:
            record = self._require(record_key)
            if record.person_id is None:
                raise UnknownRecordError("the record is not linked to a person")
            return self._apply_clerical([Unlinked(
                self._next_seq([]), self._clock(), record_key, record.person_id,
                new_person_id(), by, reason)])

    def merge(self, from_person_id: str, into_person_id: str, by: str,
              reason: str) -> ClericalChange:
        """Move every record of one person to another; the old id redirects to the new."""
        with self._lock:
            into = self.current_person(into_person_id)
            if from_person_id == into:
                raise LinkageError("a person cannot be merged into itself")
            if not self.index.records_of(into):
                raise UnknownPersonError(f"person {into_person_id} has no records")
            return self._apply_clerical([self._merge_event(from_person_id, into, by, reason,
                                                           [])])

    def undo(self, seq: int, by: str, reason: str) -> ClericalChange:
        """Reverse a link, unlink or merge (by its event seq) with new, recorded events."""
        with self._lock:
            event = next(iter(self.index.events(after_seq=seq - 1)), None)
            if event is None or event.seq != seq:
                raise LinkageError(f"no linkage event with seq {seq}")
            now = self._clock()
            events: list[LinkageEvent] = []
            if isinstance(event, Unlinked):
                record = self._require(event.record_key)
                if record.person_id != event.to_person_id:
                    raise LinkageError("the record has moved since; undo the later change")
                events.append(Linked(self._next_seq(events), now, event.record_key,
                                     event.from_person_id, "clerical", by=by))
            elif isinstance(event, Merged):
                for key in event.record_keys:
                    if self._require(key).person_id == event.into_person_id:
                        events.append(Unlinked(self._next_seq(events), now, key,
                                               event.into_person_id, event.from_person_id,
                                               by, reason))
            elif isinstance(event, Linked) and event.method not in ("new_person",
                                                                     "provisional"):
                record = self._require(event.record_key)
                if record.person_id != event.person_id:
                    raise LinkageError("the record has moved since; undo the later change")
                events.append(Unlinked(self._next_seq(events), now, event.record_key,
                                       event.person_id, new_person_id(), by, reason))
            else:
                raise LinkageError(f"a {type(event).__name__} event cannot be undone")
            if not events:
                raise LinkageError("nothing left to undo: every record has moved since")
            return self._apply_clerical(events)

    # -- helpers ---------------------------------------------------------------------------

    def current_person(self, person_id: str) -> str:
        """Follow merge redirects to the person id in use now."""
        seen = {person_id}
        while (into := self.index.merged_into(person_id)) is not None:
            if into in seen:
                raise LinkageError("merge redirects form a cycle")
            seen.add(into)
            person_id = into
        return person_id

    def person_of(self, record_key: str) -> str | None:
        record = self.index.record(record_key)
        return record.person_id if record else None

    def _require(self, record_key: str) -> IndexedRecord:
        record = self.index.record(record_key)
        if record is None:
            raise UnknownRecordError("no record with that key is in the person index")
        return record

    def _merge_event(self, from_person: str, into: str, by: str, reason: str,
                     events: list[LinkageEvent]) -> Merged:
        keys = tuple(r.record_key for r in self.index.records_of(from_person))
        if not keys:
            raise UnknownPersonError(f"person {from_person} has no records")
        return Merged(self._next_seq(events), self._clock(), from_person, into, keys, by,
                      reason)

    def _next_seq(self, pending: list[LinkageEvent]) -> int:
        return self.index.last_seq() + len(pending) + 1

    def _apply_clerical(self, events: list[LinkageEvent]) -> ClericalChange:
        before = {}
        for event in events:
            for key in _moved_keys(event):
                if key not in before:
                    record = self._require(key)
                    history = self.index.assignments(key)
                    before[key] = (record.person_id, history[-1].seq if history else 0)
        self.index.apply(events)
        at = self.index.last_seq()
        rekeys = []
        for key, (old_person, since) in before.items():
            new_person = self.person_of(key)
            if old_person is not None and new_person is not None and old_person != new_person:
                rekeys.append(Rekey(key, old_person, new_person, since, at))
        return ClericalChange(tuple(events), tuple(rekeys))


def _moved_keys(event: LinkageEvent) -> tuple[str, ...]:
    if isinstance(event, Linked | Unlinked):
        return (event.record_key,)
    if isinstance(event, Merged):
        return event.record_keys
    return ()
