"""`apply(entry, event, policy) -> (entry, timer changes)`: the ledger as a pure function.

Applying an event the entry already holds returns the entry unchanged and no changes, so
replaying the log, or reading a record twice, is harmless. Applying a set of events in
any order gives the same entry (see `referrals.entry`).
"""

from __future__ import annotations

from referrals.entry import Referral, ReferralEntry, Update
from referrals.events import (
    AlertRecorded,
    EnrollmentReported,
    LedgerEvent,
    ReferralKey,
    ReferralMade,
    StatusReported,
)
from referrals.terms import ReferralPolicy
from referrals.timers import TimerChanges, diff


def key_of(event: LedgerEvent) -> ReferralKey | None:
    """The referral an event is about; None for an enrollment that does not name its
    referrer (the ledger resolves it by the enrolling agency)."""
    if isinstance(event, EnrollmentReported):
        return event.key()
    return event.key


def apply(entry: ReferralEntry | None, event: LedgerEvent, policy: ReferralPolicy,
          key: ReferralKey | None = None) -> tuple[ReferralEntry, TimerChanges]:
    """The entry after `event`, and how its timers changed.

    `key` is needed only for an enrollment that names no referrer: the key the ledger
    resolved it to.
    """
    target = key or key_of(event)
    if target is None:
        raise ValueError("an enrollment without its referrer needs the resolved key")
    before = entry if entry is not None else ReferralEntry.empty(target)
    after = applied(before, event, policy)
    if after is before:
        return before, TimerChanges()
    return after, diff(entry, after)


def applied(entry: ReferralEntry, event: LedgerEvent,
            policy: ReferralPolicy) -> ReferralEntry:
    """The entry after `event` (the same object when the event changes nothing)."""
    if isinstance(event, ReferralMade):
        return _referral(entry, event, policy)
    if isinstance(event, AlertRecorded):
        mark = (event.step, event.alert)
        if mark in entry.alerts:
            return entry
        return ReferralEntry.build(entry.key, entry.referral, entry.updates,
                                   entry.deadlines, entry.terms_id, entry.alerts | {mark})
    if entry.has_update(event.event_id):
        return entry
    if isinstance(event, StatusReported):
        update = Update(event.event_id, event.occurred_at, event.recorded_by, event.status,
                        event.business_status, event.reason, event.program, event.subject_id)
    else:
        update = Update(event.event_id, event.occurred_at, event.enrolled_by, None,
                        program=event.program, subject_id=event.subject_id)
    return ReferralEntry.build(entry.key, entry.referral, (*entry.updates, update),
                               entry.deadlines, entry.terms_id, entry.alerts)


def _referral(entry: ReferralEntry, event: ReferralMade,
              policy: ReferralPolicy) -> ReferralEntry:
    current = entry.referral
    # Two referral events with one id: the earliest (then the smallest event id) counts,
    # whichever arrives first, so replays agree.
    if current is not None and (current.referred_at, current.event_id) <= (
            event.occurred_at, event.event_id):
        return entry
    terms = policy.terms_for(event.key.referrer, event.receiver, event.service,
                             event.sent_at)
    referral = Referral(
        event_id=event.event_id, subject_id=event.subject_id,
        receiver=event.receiver or (terms.receiver if terms is not None else None),
        program=event.program, service=event.service, urgency=event.urgency,
        referred_at=event.occurred_at, sent_at=event.sent_at)
    deadlines = terms.deadlines(event.sent_at) if terms is not None else ()
    return ReferralEntry.build(entry.key, referral, entry.updates, deadlines,
                               terms.id if terms is not None else None, entry.alerts)
