"""In-memory person index: for unit tests and small lists (a birth-match watch list)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

from linkage.blocking import blocking_keys
from linkage.events import LinkageEvent
from linkage.identity import NormalisedIdentity
from linkage.index import (
    Assignment,
    AssignmentCause,
    IndexedRecord,
    ReviewItem,
    apply_event,
)


class MemoryPersonIndex:
    """A `PersonIndex` held in dicts. A failed batch is undone from a journal."""

    def __init__(self) -> None:
        self._identity: dict[str, NormalisedIdentity] = {}
        self._person: dict[str, str] = {}
        self._members: dict[str, set[str]] = defaultdict(set)
        self._blocks: dict[str, set[str]] = defaultdict(set)
        self._history: dict[str, list[Assignment]] = defaultdict(list)
        self._redirect: dict[str, str] = {}
        self._reviews: dict[str, ReviewItem] = {}
        self._events: list[LinkageEvent] = []
        self._undo: list[Callable[[], None]] = []

    # -- port -----------------------------------------------------------------------------

    def apply(self, events: Sequence[LinkageEvent]) -> None:
        self._undo = []
        try:
            for event in events:
                apply_event(self, self.last_seq(), event)
        except BaseException:
            for undo in reversed(self._undo):
                undo()
            raise
        finally:
            self._undo = []

    def last_seq(self) -> int:
        return self._events[-1].seq if self._events else 0

    def events(self, after_seq: int = 0) -> Iterator[LinkageEvent]:
        return iter(self._events[after_seq:])

    def record(self, record_key: str) -> IndexedRecord | None:
        return self.get_record(record_key)

    def candidates(self, blocking_keys: Sequence[str], limit: int) -> tuple[IndexedRecord, ...]:
        found: dict[str, None] = {}
        for key in blocking_keys:
            for record_key in sorted(self._blocks.get(key, ())):
                found[record_key] = None
        return tuple(self._indexed(k) for k in list(found)[:limit])

    def records_of(self, person_id: str) -> tuple[IndexedRecord, ...]:
        return tuple(self._indexed(k) for k in sorted(self._members.get(person_id, ())))

    def merged_into(self, person_id: str) -> str | None:
        return self._redirect.get(person_id)

    def assignments(self, record_key: str) -> tuple[Assignment, ...]:
        return tuple(self._history.get(record_key, ()))

    def review(self, review_id: str) -> ReviewItem | None:
        return self._reviews.get(review_id)

    def open_reviews(self, limit: int = 100) -> tuple[ReviewItem, ...]:
        items = sorted((r for r in self._reviews.values() if r.status == "open"),
                       key=lambda r: r.opened_seq)
        return tuple(items[:limit])

    def iter_records(self) -> Iterator[IndexedRecord]:
        return (self._indexed(k) for k in list(self._identity))

    def counts(self) -> tuple[int, int]:
        return len(self._identity), sum(1 for m in self._members.values() if m)

    def hold_reads(self) -> None:
        """Nothing to hold: no other connection writes an index in memory."""

    def release_reads(self) -> None:
        """Nothing to release."""

    def close(self) -> None:
        pass

    # -- store primitives for apply_event ---------------------------------------------------

    def _indexed(self, record_key: str) -> IndexedRecord:
        return IndexedRecord(record_key, self._identity[record_key], self._person.get(record_key))

    def get_record(self, record_key: str) -> IndexedRecord | None:
        return self._indexed(record_key) if record_key in self._identity else None

    def put_identity(self, record_key: str, identity: NormalisedIdentity) -> None:
        old = self._identity.get(record_key)
        old_keys = blocking_keys(old) if old else ()
        new_keys = blocking_keys(identity)
        for key in old_keys:
            self._blocks[key].discard(record_key)
        for key in new_keys:
            self._blocks[key].add(record_key)
        self._identity[record_key] = identity

        def undo() -> None:
            for key in new_keys:
                self._blocks[key].discard(record_key)
            for key in old_keys:
                self._blocks[key].add(record_key)
            if old is None:
                del self._identity[record_key]
            else:
                self._identity[record_key] = old
        self._undo.append(undo)

    def assign(self, record_key: str, person_id: str, seq: int,
               cause: AssignmentCause) -> None:
        old = self._person.get(record_key)
        if old is not None:
            self._members[old].discard(record_key)
        self._person[record_key] = person_id
        self._members[person_id].add(record_key)
        self._history[record_key].append(Assignment(seq, person_id, cause))

        def undo() -> None:
            self._history[record_key].pop()
            self._members[person_id].discard(record_key)
            if old is None:
                del self._person[record_key]
            else:
                self._person[record_key] = old
                self._members[old].add(record_key)
        self._undo.append(undo)

    def set_redirect(self, person_id: str, into: str | None) -> None:
        old = self._redirect.get(person_id)
        if into is None:
            self._redirect.pop(person_id, None)
        else:
            self._redirect[person_id] = into

        def undo() -> None:
            if old is None:
                self._redirect.pop(person_id, None)
            else:
                self._redirect[person_id] = old
        self._undo.append(undo)

    def get_review(self, review_id: str) -> ReviewItem | None:
        return self._reviews.get(review_id)

    def put_review(self, item: ReviewItem) -> None:
        old = self._reviews.get(item.review_id)
        self._reviews[item.review_id] = item

        def undo() -> None:
            if old is None:
                del self._reviews[item.review_id]
            else:
                self._reviews[item.review_id] = old
        self._undo.append(undo)

    def append_event(self, event: LinkageEvent) -> None:
        self._events.append(event)

        def undo() -> None:
            self._events.pop()
        self._undo.append(undo)
