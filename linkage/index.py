"""The person index port: records, their person, open reviews, and the events behind them.

An index is a projection of its `LinkageEvent`s: `apply` is the only way to change it,
and applying the same events in the same order to an empty index gives the same index.
Adapters: `MemoryPersonIndex` (tests, small watch lists) and `SqlitePersonIndex`
(durable, indexed blocking keys). `apply_event` holds the one definition of what each
event does; adapters provide the storage primitives it calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from linkage.errors import (
    EventOrderError,
    ReviewStateError,
    UnknownRecordError,
)
from linkage.events import (
    LinkageEvent,
    Linked,
    Merged,
    RecordAdded,
    ReviewOpened,
    ReviewResolved,
    Unlinked,
)
from linkage.identity import NormalisedIdentity
from linkage.scoring import FieldEvidence

ReviewStatus = Literal["open", "same", "different"]
AssignmentCause = Literal[
    "new_person", "exact_name_dob", "probabilistic", "clerical", "provisional",
    "unlinked", "merged",
]


@dataclass(frozen=True, slots=True)
class IndexedRecord:
    record_key: str
    identity: NormalisedIdentity
    person_id: str | None
    """None only between a record's `RecordAdded` and its first `Linked` event."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """From event `seq` on, the record belonged to `person_id` (until the next assignment)."""

    seq: int
    person_id: str
    cause: AssignmentCause


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A clerical review item: evidence is field, level and weight, never values."""

    review_id: str
    record_key: str
    candidate_person_id: str
    match_weight: float
    evidence: tuple[FieldEvidence, ...]
    reason: str
    opened_seq: int
    status: ReviewStatus = "open"
    resolved_by: str | None = None
    resolved_seq: int | None = None


class PersonIndex(Protocol):
    """Port: what the linkage engine reads and how it changes the index."""

    def apply(self, events: Sequence[LinkageEvent]) -> None:
        """Apply events in order, all or nothing. Each `seq` must be the next one
        (EventOrderError otherwise); an event that does not fit the state (an unknown
        record, a review already resolved) raises and nothing of the batch is applied."""
        ...

    def last_seq(self) -> int:
        """The seq of the last applied event, 0 for an empty index."""
        ...

    def events(self, after_seq: int = 0) -> Iterator[LinkageEvent]:
        """The applied events with seq > after_seq, in order."""
        ...

    def record(self, record_key: str) -> IndexedRecord | None: ...

    def candidates(self, blocking_keys: Sequence[str], limit: int) -> tuple[IndexedRecord, ...]:
        """Records sharing at least one blocking key, at most `limit` of them."""
        ...

    def records_of(self, person_id: str) -> tuple[IndexedRecord, ...]: ...

    def merged_into(self, person_id: str) -> str | None:
        """The person a merged-away person id now redirects to (one step), or None."""
        ...

    def assignments(self, record_key: str) -> tuple[Assignment, ...]:
        """The record's person over time, oldest first."""
        ...

    def review(self, review_id: str) -> ReviewItem | None: ...

    def open_reviews(self, limit: int = 100) -> tuple[ReviewItem, ...]:
        """Open review items, oldest first."""
        ...

    def iter_records(self) -> Iterator[IndexedRecord]:
        """Every record (for training and exports), in no particular order."""
        ...

    def counts(self) -> tuple[int, int]:
        """(records, persons with at least one record)."""
        ...

    def hold_reads(self) -> None:
        """A batch of reads begins (the router's batch): an adapter that other connections
        may write (SQLite) looks for their commits once now rather than before every read,
        until `release_reads` or a second has passed. Writes through this instance are
        seen at once whatever the hold."""
        ...

    def release_reads(self) -> None:
        """The batch is over: look for other connections' commits before each read again."""
        ...

    def close(self) -> None: ...


class IndexStore(Protocol):
    """Storage primitives `apply_event` is written against (adapters implement them)."""

    def get_record(self, record_key: str) -> IndexedRecord | None: ...
    def put_identity(self, record_key: str, identity: NormalisedIdentity) -> None: ...
    def assign(self, record_key: str, person_id: str, seq: int,
               cause: AssignmentCause) -> None: ...
    def set_redirect(self, person_id: str, into: str | None) -> None: ...
    def get_review(self, review_id: str) -> ReviewItem | None: ...
    def put_review(self, item: ReviewItem) -> None: ...
    def append_event(self, event: LinkageEvent) -> None: ...


def apply_event(store: IndexStore, last_seq: int, event: LinkageEvent) -> None:
    """The meaning of each event, once for every adapter. Checks before it changes."""
    if event.seq != last_seq + 1:
        raise EventOrderError(f"linkage event seq {event.seq} applied after {last_seq}; "
                              f"expected {last_seq + 1}")
    if isinstance(event, RecordAdded):
        store.put_identity(event.record_key, event.identity)
    elif isinstance(event, Linked):
        _require_record(store, event.record_key)
        store.assign(event.record_key, event.person_id, event.seq, event.method)
        store.set_redirect(event.person_id, None)
    elif isinstance(event, ReviewOpened):
        _require_record(store, event.record_key)
        if store.get_review(event.review_id) is not None:
            raise ReviewStateError(f"review {event.review_id} already exists")
        store.put_review(ReviewItem(
            event.review_id, event.record_key, event.candidate_person_id,
            event.match_weight, event.evidence, event.reason, event.seq))
    elif isinstance(event, ReviewResolved):
        item = store.get_review(event.review_id)
        if item is None or item.status != "open":
            raise ReviewStateError(f"review {event.review_id} is not open")
        store.put_review(ReviewItem(
            item.review_id, item.record_key, item.candidate_person_id, item.match_weight,
            item.evidence, item.reason, item.opened_seq, event.decision, event.by,
            event.seq))
    elif isinstance(event, Unlinked):
        record = _require_record(store, event.record_key)
        if record.person_id != event.from_person_id:
            raise UnknownRecordError(f"record is not assigned to {event.from_person_id}")
        store.assign(event.record_key, event.to_person_id, event.seq, "unlinked")
        store.set_redirect(event.to_person_id, None)
    elif isinstance(event, Merged):
        for key in event.record_keys:
            record = _require_record(store, key)
            if record.person_id != event.from_person_id:
                raise UnknownRecordError(f"record is not assigned to {event.from_person_id}")
        for key in event.record_keys:
            store.assign(key, event.into_person_id, event.seq, "merged")
        store.set_redirect(event.from_person_id, event.into_person_id)
    store.append_event(event)


def _require_record(store: IndexStore, record_key: str) -> IndexedRecord:
    record = store.get_record(record_key)
    if record is None:
        raise UnknownRecordError("no record with that key is in the person index")
    return record
