"""Where the ledger keeps its entries, timers and place in the log: the `LedgerStore` port.

The ledger is a materialised view of the log (the `referral`, `referral_status`,
`enrollment` and `handoff_overdue` topics). A store keeps that view and, in the same
write, the log positions it reflects, so after a restart the ledger resumes from its
positions and nothing is applied twice or skipped; a store that is lost is rebuilt by
reading the topics from the start. The embedded broker keeps it in SQLite
(`broker.referral_store.SqliteLedgerStore`); tests use `InMemoryLedgerStore`.

A store never interprets entries. The ledger decides; the store remembers, and answers
three questions fast: an entry by key, the keys of a referral id at a receiver (to place
an enrollment that does not name its referrer), and the timers that are due.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from referrals.entry import ReferralEntry
from referrals.events import EnrollmentReported, ReferralKey
from referrals.timers import Timer, TimerChanges


@dataclass(frozen=True, slots=True)
class Position:
    """The next offset to read in one partition of one topic."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class LedgerWrite:
    """Everything one batch changes, written at once."""

    entries: tuple[ReferralEntry, ...] = ()
    timers: TimerChanges = field(default_factory=TimerChanges)
    pending_added: tuple[EnrollmentReported, ...] = ()
    """Enrollments whose referral the ledger does not know yet."""
    pending_resolved: tuple[str, ...] = ()
    """Event ids of waiting enrollments that have now been applied."""
    positions: tuple[Position, ...] = ()


class TimerIndex(Protocol):
    """Timers by due time. A tick asks only for what is due: its cost grows with the
    number of due timers, not with the number of open referrals."""

    def due(self, now_ms: int, limit: int) -> list[Timer]:
        """Up to `limit` timers with `due_at <= now_ms`, earliest first."""
        ...

    def next_due_at(self) -> int | None:
        """The earliest due time of any timer, or None when there is none."""
        ...

    def timer_count(self) -> int: ...


class LedgerStore(TimerIndex, Protocol):
    """Persistence for the referral ledger.

    Guarantees a store must give:

    - `write` is atomic and durable when it returns: its entries, timer changes, pending
      enrollments and positions are all kept, or (if it raises) none of them is.
    - After a reopen, `get`, `due`, `positions` and `scan` answer as before the close.
    - A timer is identified by (key, step, action); scheduling it again replaces its due
      time, unscheduling one that is not there is harmless.
    - A position only moves forward: writing an older offset keeps the newer one.

    The ledger serialises its own calls; a store need not be thread-safe beyond that.
    """

    def get(self, keys: Iterable[ReferralKey]) -> dict[ReferralKey, ReferralEntry]:
        """The entries that exist among `keys`."""
        ...

    def keys_for(self, receiver: str, referral_id: str) -> list[ReferralKey]:
        """Keys of the entries with this referral id whose `match_receiver` is
        `receiver`."""
        ...

    def pending_for(self, receiver: str, referral_id: str) -> list[EnrollmentReported]:
        """Enrollments by `receiver` naming `referral_id` that wait for their referral."""
        ...

    def pending_count(self) -> int: ...

    def write(self, batch: LedgerWrite) -> None: ...

    def positions(self) -> dict[tuple[str, int], int]:
        """The next offset to read, by (topic, partition)."""
        ...

    def scan(self) -> Iterator[ReferralEntry]:
        """Every entry, in key order (for reports)."""
        ...

    def entry_count(self) -> int: ...

    def close(self) -> None: ...


class InMemoryLedgerStore:
    """A `LedgerStore` that forgets everything when the process ends. For tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[ReferralKey, ReferralEntry] = {}
        self._by_receiver: dict[tuple[str, str], set[ReferralKey]] = {}
        self._timers: dict[tuple[object, ...], Timer] = {}
        self._heap: list[Timer] = []
        self._pending: dict[tuple[str, str], dict[str, EnrollmentReported]] = {}
        self._positions: dict[tuple[str, int], int] = {}

    def get(self, keys: Iterable[ReferralKey]) -> dict[ReferralKey, ReferralEntry]:
        with self._lock:
            return {k: self._entries[k] for k in keys if k in self._entries}

    def keys_for(self, receiver: str, referral_id: str) -> list[ReferralKey]:
        with self._lock:
            return sorted(self._by_receiver.get((receiver, referral_id), ()))

    def pending_for(self, receiver: str, referral_id: str) -> list[EnrollmentReported]:
        with self._lock:
            found = self._pending.get((receiver, referral_id), {})
            return [found[e] for e in sorted(found)]

    def pending_count(self) -> int:
        with self._lock:
            return sum(len(p) for p in self._pending.values())

    def write(self, batch: LedgerWrite) -> None:
        with self._lock:
            for entry in batch.entries:
                old = self._entries.get(entry.key)
                if old is not None and old.match_receiver is not None:
                    self._by_receiver.get((old.match_receiver, old.key.referral_id),
                                          set()).discard(entry.key)
                self._entries[entry.key] = entry
                if entry.match_receiver is not None:
                    self._by_receiver.setdefault(
                        (entry.match_receiver, entry.key.referral_id), set()).add(entry.key)
            for timer in batch.timers.unschedule:
                self._timers.pop(timer.identity, None)
            for timer in batch.timers.schedule:
                self._timers[timer.identity] = timer
                heapq.heappush(self._heap, timer)
            for enrollment in batch.pending_added:
                self._pending.setdefault((enrollment.enrolled_by, enrollment.referral_id),
                                         {})[enrollment.event_id] = enrollment
            resolved = set(batch.pending_resolved)
            if resolved:
                for waiting in self._pending.values():
                    for event_id in resolved & waiting.keys():
                        del waiting[event_id]
            for position in batch.positions:
                where = (position.topic, position.partition)
                self._positions[where] = max(self._positions.get(where, 0), position.offset)

    def due(self, now_ms: int, limit: int) -> list[Timer]:
        with self._lock:
            found: list[Timer] = []
            seen: set[tuple[object, ...]] = set()
            # Superseded and duplicate heap items are dropped as they surface; live ones
            # go back, since a timer stays until the ledger unschedules it.
            while self._heap and len(found) < limit and self._heap[0].due_at <= now_ms:
                timer = heapq.heappop(self._heap)
                if self._timers.get(timer.identity) == timer and timer.identity not in seen:
                    seen.add(timer.identity)
                    found.append(timer)
            for timer in found:
                heapq.heappush(self._heap, timer)
            return found

    def next_due_at(self) -> int | None:
        with self._lock:
            while self._heap and self._timers.get(self._heap[0].identity) != self._heap[0]:
                heapq.heappop(self._heap)
            return self._heap[0].due_at if self._heap else None

    def timer_count(self) -> int:
        with self._lock:
            return len(self._timers)

    def positions(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._positions)

    def scan(self) -> Iterator[ReferralEntry]:
        with self._lock:
            entries = [self._entries[k] for k in sorted(self._entries)]
        return iter(entries)

    def entry_count(self) -> int:
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        pass
