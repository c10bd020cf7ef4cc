"""What the ledger learns from the log, as values: a referral made, a status reported,
an enrollment that answers a referral, an overdue alert recorded.

The wiring decodes each record from its topic and calls `ledger_event` with the agency
that published it (the ingress source header) and the record's log timestamp. Nothing
here reads the log; records may be in fastavro form (datetimes) or hold epoch
milliseconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from policy.referral_terms import STEPS, Step
from referrals.errors import ReferralRecordError
from referrals.lifecycle import BusinessStatus, Reason, Status

Alert = Literal["RAISED", "CLEARED"]
_E = TypeVar("_E", BusinessStatus, Reason)

REFERRAL, STATUS, ENROLLMENT, OVERDUE = ("referral", "referral_status", "enrollment",
                                         "handoff_overdue")
EVENT_TYPES = (REFERRAL, STATUS, ENROLLMENT, OVERDUE)
"""The event types the ledger reads, each from its own ingress topic."""


@dataclass(frozen=True, slots=True, order=True)
class ReferralKey:
    """A referral id is the referring agency's own number, unique only within it."""

    referrer: str
    referral_id: str


@dataclass(frozen=True, slots=True)
class ReferralMade:
    event_id: str
    key: ReferralKey
    subject_id: str
    receiver: str | None
    program: str | None
    service: str
    urgency: str
    occurred_at: int
    """When the referral was made in the referrer's system."""
    sent_at: int
    """When it reached the broker (its log timestamp); service levels count from here."""


@dataclass(frozen=True, slots=True)
class StatusReported:
    event_id: str
    key: ReferralKey
    subject_id: str
    recorded_by: str
    program: str | None
    status: Status
    business_status: BusinessStatus | None
    reason: Reason | None
    occurred_at: int


@dataclass(frozen=True, slots=True)
class EnrollmentReported:
    """An enrollment naming a referral: the family enrolled in the receiver's program."""

    event_id: str
    referral_id: str
    enrolled_by: str
    """The enrolling agency (the enrollment's publisher)."""
    referrer: str | None
    """`referred_by` when the enrollment names it; otherwise the ledger looks the referral
    up by the enrolling agency and the referral id."""
    subject_id: str
    program: str | None
    occurred_at: int

    def key(self) -> ReferralKey | None:
        return None if self.referrer is None else ReferralKey(self.referrer,
                                                              self.referral_id)


@dataclass(frozen=True, slots=True)
class AlertRecorded:
    """A `handoff_overdue` event seen on the log, or just published by the tick."""

    event_id: str
    key: ReferralKey
    step: Step
    alert: Alert
    occurred_at: int


LedgerEvent = ReferralMade | StatusReported | EnrollmentReported | AlertRecorded


def ledger_event(event_type: str, record: Mapping[str, Any], source: str,
                 logged_at_ms: int) -> LedgerEvent | None:
    """The ledger's view of one record, or None when it says nothing about a referral
    (an enrollment with no referral id, an exit). `source` is the publishing agency.

    Raises `ReferralRecordError` naming the field when a record lacks what is needed.
    """
    if event_type == REFERRAL:
        return ReferralMade(
            event_id=_text(record, "event_id"),
            key=ReferralKey(source, _text(record, "referral_id")),
            subject_id=_text(record, "subject_id"),
            receiver=_optional(record, "referred_to_agency"),
            program=_optional(record, "referred_to_program"),
            service=_text(record, "referred_to_service"),
            urgency=_text(record, "urgency"),
            occurred_at=millis(record.get("occurred_at"), "occurred_at"),
            sent_at=logged_at_ms,
        )
    if event_type == STATUS:
        return StatusReported(
            event_id=_text(record, "event_id"),
            key=ReferralKey(_text(record, "referrer"), _text(record, "referral_id")),
            subject_id=_text(record, "subject_id"),
            recorded_by=_text(record, "recorded_by"),
            program=_optional(record, "program_id"),
            status=_enum(Status, record, "status"),
            business_status=_optional_enum(BusinessStatus, record, "business_status"),
            reason=_optional_enum(Reason, record, "reason"),
            occurred_at=millis(record.get("occurred_at"), "occurred_at"),
        )
    if event_type == ENROLLMENT:
        referral_id = _optional(record, "referral_id")
        if referral_id is None or _text(record, "action") != "ENROLLED":
            return None
        return EnrollmentReported(
            event_id=_text(record, "event_id"),
            referral_id=referral_id,
            enrolled_by=source,
            referrer=_optional(record, "referred_by"),
            subject_id=_text(record, "subject_id"),
            program=_optional(record, "program_id"),
            occurred_at=millis(record.get("occurred_at"), "occurred_at"),
        )
    if event_type == OVERDUE:
        step = _text(record, "service_level").lower()
        alert = _text(record, "alert")
        if step not in STEPS or alert not in ("RAISED", "CLEARED"):
            raise ReferralRecordError("handoff_overdue record has an unknown service_level "
                                      "or alert")
        return AlertRecorded(
            event_id=_text(record, "event_id"),
            key=ReferralKey(_text(record, "referrer"), _text(record, "referral_id")),
            step=step,
            alert="RAISED" if alert == "RAISED" else "CLEARED",
            occurred_at=millis(record.get("occurred_at"), "occurred_at"),
        )
    return None


# -- field readers ---------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def millis(value: Any, name: str) -> int:
    """Epoch milliseconds of a timestamp field: a datetime (fastavro), milliseconds, or
    ISO 8601 text with a zone (a record in JSON form, as subscribers receive it)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ReferralRecordError(f"'{name}' must be a timestamp") from None
        if value.tzinfo is None:
            raise ReferralRecordError(f"'{name}' must be a timestamp with a zone")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return (value - _EPOCH) // _MS
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ReferralRecordError(f"'{name}' must be a timestamp")


def _text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise ReferralRecordError(f"'{name}' must be a non-empty string")
    return value


def _optional(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ReferralRecordError(f"'{name}' must be a string or null")
    return value


def _enum(kind: type[Status], record: Mapping[str, Any], name: str) -> Status:
    try:
        return kind(_text(record, name))
    except ValueError:
        raise ReferralRecordError(f"'{name}' is not a known symbol") from None


def _optional_enum(kind: type[_E], record: Mapping[str, Any], name: str) -> _E | None:
    value = _optional(record, name)
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ReferralRecordError(f"'{name}' is not a known symbol") from None
