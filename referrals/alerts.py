"""Overdue alerts: what the tick publishes as `handoff_overdue`, with stable ids.

The event id of an alert is a UUID version 5 of (referrer, referral id, step, alert), so
every firing of one deadline, in any process, before or after a restart or a replay,
publishes the same id: the broker's idempotent publish keeps the first and answers the
rest with it, and subscribers that see a duplicate recognise it by its id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from policy.referral_terms import Step
from referrals.entry import ReferralEntry
from referrals.events import Alert, AlertRecorded, ReferralKey
from referrals.lifecycle import Status
from referrals.timers import Timer

ALERT_IDS = uuid.UUID("8f0b6c1e-2a47-4d7e-9c35-1b6e4f2d9a70")


def alert_event_id(key: ReferralKey, step: Step, alert: Alert) -> str:
    return str(uuid.uuid5(ALERT_IDS, f"{key.referrer}\x1f{key.referral_id}\x1f{step}"
                                     f"\x1f{alert}"))


@dataclass(frozen=True, slots=True)
class OverdueAlert:
    """One `handoff_overdue` event to publish (as the broker, to both parties)."""

    key: ReferralKey
    step: Step
    alert: Alert
    subject_id: str
    receiver: str
    program: str | None
    service: str
    within: str
    terms_id: str
    referred_at: int
    due_at: int
    settled_at: int | None
    status: Status

    @property
    def event_id(self) -> str:
        return alert_event_id(self.key, self.step, self.alert)

    @property
    def occurred_at(self) -> int:
        """RAISED: the due time (so every firing is the same event); CLEARED: when the
        step happened."""
        if self.alert == "CLEARED" and self.settled_at is not None:
            return self.settled_at
        return self.due_at

    def record(self) -> dict[str, Any]:
        """The `handoff_overdue` record; timestamps in epoch milliseconds."""
        return {
            "event_id": self.event_id, "occurred_at": self.occurred_at,
            "subject_id": self.subject_id, "referral_id": self.key.referral_id,
            "referrer": self.key.referrer, "receiver": self.receiver,
            "program_id": self.program, "service": self.service,
            "service_level": self.step.upper(), "within": self.within,
            "terms_id": self.terms_id, "referred_at": self.referred_at,
            "due_at": self.due_at, "alert": self.alert, "settled_at": self.settled_at,
            "status": self.status.value,
        }

    def recorded(self) -> AlertRecorded:
        """The ledger event that marks this alert as published."""
        return AlertRecorded(self.event_id, self.key, self.step, self.alert,
                             self.occurred_at)


def alert_for(entry: ReferralEntry, timer: Timer) -> OverdueAlert | None:
    """The alert a due timer stands for, if the entry still owes it."""
    deadline = next((d for d in entry.deadlines if d.step == timer.step), None)
    referral = entry.referral
    if deadline is None or referral is None or entry.terms_id is None:
        return None
    receiver = entry.receiver or referral.receiver
    subject = entry.subject_id or referral.subject_id
    if receiver is None:
        return None
    settled = entry.settled_at(timer.step)
    raised = (timer.step, "RAISED") in entry.alerts
    cleared = (timer.step, "CLEARED") in entry.alerts
    if timer.action == "RAISE" and (raised or (settled is not None
                                               and settled < deadline.due_at)):
        return None
    if timer.action == "CLEAR" and (not raised or cleared or settled is None):
        return None
    return OverdueAlert(
        key=entry.key, step=timer.step,
        alert="RAISED" if timer.action == "RAISE" else "CLEARED",
        subject_id=subject, receiver=receiver, program=entry.program,
        service=referral.service, within=deadline.within, terms_id=entry.terms_id,
        referred_at=referral.sent_at, due_at=deadline.due_at,
        settled_at=settled if timer.action == "CLEAR" else None, status=entry.status)
