"""Ledger entries and waiting enrollments as JSON, for stores that keep text.

Only an entry's sources are written (referral, updates, deadlines, terms, alerts); the
derived fields are recomputed on load, so a store can never hold a status that its
updates do not add up to. `FORMAT` changes when the layout does.
"""

from __future__ import annotations

import json
from typing import Any

from policy.referral_terms import STEPS, Step
from referrals.entry import Deadline, Referral, ReferralEntry, Update
from referrals.errors import ReferralRecordError
from referrals.events import Alert, EnrollmentReported, ReferralKey
from referrals.lifecycle import BusinessStatus, Reason, Status

FORMAT = 1


def entry_to_json(entry: ReferralEntry) -> str:
    referral = entry.referral
    data: dict[str, Any] = {
        "v": FORMAT,
        "key": [entry.key.referrer, entry.key.referral_id],
        "referral": None if referral is None else [
            referral.event_id, referral.subject_id, referral.receiver, referral.program,
            referral.service, referral.urgency, referral.referred_at, referral.sent_at],
        "updates": [[u.event_id, u.occurred_at, u.recorded_by,
                     None if u.status is None else u.status.value,
                     None if u.business_status is None else u.business_status.value,
                     None if u.reason is None else u.reason.value, u.program, u.subject_id]
                    for u in entry.updates],
        "deadlines": [[d.step, d.due_at, d.within] for d in entry.deadlines],
        "terms": entry.terms_id,
        "alerts": sorted([step, alert] for step, alert in entry.alerts),
    }
    return json.dumps(data, separators=(",", ":"))


def entry_from_json(text: str) -> ReferralEntry:
    try:
        data = json.loads(text)
        if data.get("v") != FORMAT:
            raise ReferralRecordError(f"stored entry has format {data.get('v')!r}; this "
                                      f"version reads {FORMAT}")
        key = ReferralKey(*data["key"])
        raw = data["referral"]
        referral = None if raw is None else Referral(*raw)
        updates = [Update(event_id, at, by, None if status is None else Status(status),
                          None if business is None else BusinessStatus(business),
                          None if reason is None else Reason(reason), program, subject)
                   for event_id, at, by, status, business, reason, program, subject
                   in data["updates"]]
        deadlines = [Deadline(_step(step), int(due), str(within))
                     for step, due, within in data["deadlines"]]
        alerts = frozenset((_step(step), _alert(alert)) for step, alert in data["alerts"])
        return ReferralEntry.build(key, referral, updates, deadlines, data["terms"], alerts)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ReferralRecordError):
            raise
        raise ReferralRecordError(f"stored entry is malformed: {exc.__class__.__name__}"
                                  ) from exc


def enrollment_to_json(event: EnrollmentReported) -> str:
    return json.dumps([event.event_id, event.referral_id, event.enrolled_by, event.referrer,
                       event.subject_id, event.program, event.occurred_at],
                      separators=(",", ":"))


def enrollment_from_json(text: str) -> EnrollmentReported:
    try:
        return EnrollmentReported(*json.loads(text))
    except (TypeError, ValueError) as exc:
        raise ReferralRecordError("stored enrollment is malformed") from exc


def _step(value: str) -> Step:
    for step in STEPS:
        if step == value:
            return step
    raise ValueError("unknown step")


def _alert(value: str) -> Alert:
    if value == "RAISED":
        return "RAISED"
    if value == "CLEARED":
        return "CLEARED"
    raise ValueError("unknown alert")
