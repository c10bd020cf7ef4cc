"""The referral ledger: applies log events in batches and runs the service-level timers.

The wiring (a worker in the broker) drives it:

1. **catch up**: read the four topics (`referral`, `referral_status`, `enrollment`,
   `handoff_overdue`) from `positions()`, turn each record into a `LedgerEvent`
   (`referrals.events.ledger_event`) and hand them to `apply` with their positions: the
   entries, timers and positions are written in one store write;
2. **tick**: `due_alerts(now)` returns the overdue alerts owed; publish each (its
   `event_id` is stable) to `events.handoff_overdue`, then `record_alerts` them. A crash
   between the two publishes the same ids again after the restart: duplicates the
   idempotent publish answers with the first;
3. **publish path**: before a `referral_status` event is accepted, `check_update` refuses
   one that does not fit the referral's life.

The ledger holds no state of its own beyond the store and the compiled policy, and does
no I/O except through the store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from referrals.alerts import OverdueAlert, alert_for
from referrals.apply import applied, key_of
from referrals.entry import ReferralEntry, Update
from referrals.errors import (
    IllegalTransition,
    NotAParty,
    OutOfOrderUpdate,
    ReferralError,
    UnknownReferral,
)
from referrals.events import EnrollmentReported, LedgerEvent, ReferralKey, StatusReported
from referrals.lifecycle import TRANSITIONS, check_party, update_problems
from referrals.store import LedgerStore, LedgerWrite, Position
from referrals.terms import ReferralPolicy
from referrals.timers import Timer, TimerChanges, timers_of


class ReferralLedger:
    def __init__(self, store: LedgerStore, policy: ReferralPolicy) -> None:
        self._store = store
        self._policy = policy
        self._lock = threading.Lock()

    @property
    def policy(self) -> ReferralPolicy:
        return self._policy

    def use_policy(self, policy: ReferralPolicy) -> None:
        """A new bundle: referrals that arrive from now on get its terms."""
        self._policy = policy

    @property
    def store(self) -> LedgerStore:
        return self._store

    def positions(self) -> dict[tuple[str, int], int]:
        return self._store.positions()

    def entry(self, key: ReferralKey) -> ReferralEntry | None:
        return self._store.get([key]).get(key)

    # -- catching up -------------------------------------------------------------------

    def apply(self, events: Sequence[LedgerEvent],
              positions: Iterable[Position] = ()) -> TimerChanges:
        """Apply events in order, then write entries, timers and positions at once.
        Returns the net timer changes (for metrics and tests; the store already has
        them)."""
        with self._lock:
            batch = _Batch(self._store, self._policy)
            for event in events:
                batch.take(event)
            write = batch.finish(tuple(positions))
            self._store.write(write)
            return write.timers

    # -- the tick ----------------------------------------------------------------------

    def due_alerts(self, now_ms: int, limit: int = 1000) -> list[OverdueAlert]:
        """The alerts owed at `now_ms`: timers read from the index by due time only."""
        with self._lock:
            timers = self._store.due(now_ms, limit)
            entries = self._store.get({t.key for t in timers})
            alerts: list[OverdueAlert] = []
            stale: list[Timer] = []
            for timer in timers:
                entry = entries.get(timer.key)
                alert = alert_for(entry, timer) if entry is not None else None
                if alert is None:
                    stale.append(timer)
                else:
                    alerts.append(alert)
            if stale:  # only after a store was edited by hand; keep the index honest
                self._store.write(LedgerWrite(timers=TimerChanges(unschedule=tuple(stale))))
            return alerts

    def record_alerts(self, alerts: Iterable[OverdueAlert]) -> None:
        """Mark alerts as published (the same as reading them back from the log)."""
        self.apply([a.recorded() for a in alerts])

    # -- the publish path --------------------------------------------------------------

    def check_update(self, update: StatusReported) -> None:
        """Refuse a status update that does not fit the referral's life.

        Raises `ReferralError` (the record on its own), `NotAParty` (an agency that may
        not change this referral) or `IllegalTransition` naming both statuses. A status
        for a referral the ledger has not seen yet is checked as if the referral were
        `REQUESTED`.
        """
        entry = self.entry(update.key) or ReferralEntry.empty(update.key)
        _checked(entry, update)

    def check_updates(self, updates: Sequence[StatusReported]) -> None:
        """`check_update` for the updates of one request, in order, each against the
        entry as the updates before it leave it; every one must also answer a referral
        the ledger holds (`UnknownReferral`). Raises the first refusal."""
        for _, refusal in self.refusals(updates)[:1]:
            raise refusal

    def refusals(self, updates: Sequence[StatusReported]
                 ) -> list[tuple[int, ReferralError]]:
        """Every update of one request that `check_updates` would refuse, by its index
        in `updates`. A refused update is left out of what the later ones are checked
        against."""
        after: dict[ReferralKey, ReferralEntry] = {}
        found: list[tuple[int, ReferralError]] = []
        for index, update in enumerate(updates):
            entry = after.get(update.key) or self.entry(update.key)
            try:
                if entry is None or entry.referral is None:
                    raise UnknownReferral(update.key.referrer)
                after[update.key] = _checked(entry, update)
            except ReferralError as refusal:
                found.append((index, refusal))
        return found


def _checked(entry: ReferralEntry, update: StatusReported) -> ReferralEntry:
    """The entry with `update`, or the refusal of it."""
    problems = update_problems(update.status, update.business_status, update.reason)
    if problems:
        raise ReferralError("; ".join(f"{f}: {m}" for f, m in problems))
    if entry.has_update(update.event_id):
        return entry  # a re-sent event: the publish path answers it as a duplicate
    check_party(update.status, update.recorded_by, update.key.referrer, entry.receiver)
    candidate = Update(update.event_id, update.occurred_at, update.recorded_by,
                       update.status, update.business_status, update.reason,
                       update.program, update.subject_id)
    after = ReferralEntry.build(entry.key, entry.referral, (*entry.updates, candidate),
                                entry.deadlines, entry.terms_id, entry.alerts)
    before_ids = {i.event_id for i in entry.ignored}
    for ignored in after.ignored:
        if ignored.event_id == update.event_id:
            if ignored.kind == "party":
                raise NotAParty(f"'{update.recorded_by}' is not the receiving agency "
                                "of this referral")
            raise IllegalTransition(ignored.current.value, update.status.value,
                                    (s.value for s in TRANSITIONS[ignored.current]))
        if ignored.event_id not in before_ids:
            raise OutOfOrderUpdate(update.status.value, ignored.status.value)
    return after


class _Batch:
    """One `apply` call: entries loaded once, changed in memory, written together."""

    def __init__(self, store: LedgerStore, policy: ReferralPolicy) -> None:
        self.store = store
        self.policy = policy
        self.loaded: dict[ReferralKey, ReferralEntry | None] = {}
        self.working: dict[ReferralKey, ReferralEntry] = {}
        self.pending_added: dict[str, EnrollmentReported] = {}
        self.resolved: list[str] = []
        self.stored_pending: bool | None = None

    def _current(self, key: ReferralKey) -> ReferralEntry | None:
        if key in self.working:
            return self.working[key]
        if key not in self.loaded:
            self.loaded[key] = self.store.get([key]).get(key)
        return self.loaded[key]

    def _resolve(self, enrollment: EnrollmentReported) -> ReferralKey | None:
        """The referral an enrollment answers: named by `referred_by`, or the only
        referral with its id whose receiver is the enrolling agency."""
        direct = enrollment.key()
        if direct is not None:
            return direct
        candidates = set(self.store.keys_for(enrollment.enrolled_by, enrollment.referral_id))
        candidates |= {k for k in self.working if k.referral_id == enrollment.referral_id}
        found = [k for k in candidates if (e := self._current(k)) is not None
                 and e.match_receiver == enrollment.enrolled_by]
        return found[0] if len(found) == 1 else None

    def take(self, event: LedgerEvent, key: ReferralKey | None = None) -> None:
        if key is None:
            if isinstance(event, EnrollmentReported):
                key = self._resolve(event)
                if key is None:
                    self.pending_added[event.event_id] = event
                    return
            else:
                key = key_of(event)
        assert key is not None
        before = self._current(key)
        # Timer changes are worked out once per key in `finish`, not per event.
        after = applied(before if before is not None else ReferralEntry.empty(key), event,
                        self.policy)
        if after is before:
            return
        self.working[key] = after
        receiver = after.match_receiver
        if receiver is not None and (before is None or before.match_receiver != receiver):
            self._pull_pending(after.key, receiver)

    def _pull_pending(self, key: ReferralKey, receiver: str) -> None:
        """Enrollments that waited for this referral (and its receiver) to be known."""
        if self.stored_pending is None:
            self.stored_pending = self.store.pending_count() > 0
        waiting = [p for p in self.store.pending_for(receiver, key.referral_id)
                   if p.event_id not in self.resolved] if self.stored_pending else []
        waiting += [p for p in self.pending_added.values()
                    if (p.enrolled_by, p.referral_id) == (receiver, key.referral_id)]
        for enrollment in waiting:
            self.pending_added.pop(enrollment.event_id, None)
            self.resolved.append(enrollment.event_id)
            self.take(enrollment, key)

    def finish(self, positions: tuple[Position, ...]) -> LedgerWrite:
        schedule: list[Timer] = []
        unschedule: list[Timer] = []
        for key, entry in self.working.items():
            stored = self.loaded.get(key)
            old = timers_of(stored) if stored is not None else frozenset()
            new = timers_of(entry)
            schedule += sorted(new - old)
            unschedule += sorted(old - new)
        return LedgerWrite(
            entries=tuple(self.working[k] for k in sorted(self.working)),
            timers=TimerChanges(tuple(schedule), tuple(unschedule)),
            pending_added=tuple(self.pending_added.values()),
            pending_resolved=tuple(self.resolved),
            positions=positions)
