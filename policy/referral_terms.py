"""Referral terms and business calendars: the bundle's `referrals.yaml` and `calendars.yaml`.

A referral agreement is an ordinary data sharing agreement that carries `referral`
events from a referring agency to a receiving one. Its **referral terms** add what only a
referral has:

- **service levels**: by when each step is due, counted from when the referral reached
  the broker (`first_contact: 3 business days`);
- the **business calendar** those days are counted in (time zone, weekend, holidays);
- the **feedback terms**: which status changes flow back to the referrer, under which
  data sharing agreement (from the receiver to the referrer, for `referral_status`). The
  agreement's fields decide what each released status carries (dates exact or by month,
  a decline reason or not); the terms decide which statuses are released at all.

These models check each entry on its own; `policy.referral_checks` checks how terms refer
to agreements, calendars and the event schemas.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from policy.model import IDENTIFIER_PATTERN

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
Symbol = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,62}$")]
"""An Avro enum symbol, as subscription filters write them (`HOME_VISITING`)."""

Step = Literal["received", "accepted", "first_contact", "enrolled", "outcome"]
STEPS: tuple[Step, ...] = ("received", "accepted", "first_contact", "enrolled", "outcome")
"""The steps a service level can set a deadline for, in the order a referral reaches
them: the receiver acknowledged it, accepted it, first reached out to the family, the
family enrolled; `outcome` is whichever ends the handoff first (enrolled, declined,
failed, completed or cancelled)."""

Unit = Literal["business_days", "days", "hours"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                  "sunday"]
WEEKDAYS: tuple[Weekday, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday",
                                 "saturday", "sunday")

_DURATION = re.compile(
    r"^\s*(?P<n>\d{1,4})\s+(?P<unit>business\s+days?|calendar\s+days?|days?|hours?)\s*$")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- calendars -------------------------------------------------------------------------


class BusinessCalendar(_Entry):
    """Which days count as business days, and in which time zone days begin and end."""

    id: Identifier
    timezone: str
    """An IANA time zone name, for example America/Chicago."""
    weekend: tuple[Weekday, ...] = ("saturday", "sunday")
    holidays: tuple[dt.date, ...] = ()
    description: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{name}'; use an IANA name such as "
                             "America/Chicago") from None
        return name

    @field_validator("weekend")
    @classmethod
    def _some_workdays(cls, days: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        if len(set(days)) >= len(WEEKDAYS):
            raise ValueError("every day is a weekend day; a calendar needs business days")
        return days

    @field_validator("holidays")
    @classmethod
    def _no_repeats(cls, days: tuple[dt.date, ...]) -> tuple[dt.date, ...]:
        repeated = sorted({d for d in days if days.count(d) > 1})
        if repeated:
            raise ValueError(f"{repeated[0].isoformat()} is listed twice")
        return tuple(sorted(days))

    @property
    def weekend_numbers(self) -> frozenset[int]:
        """The weekend as `date.weekday()` numbers (Monday is 0)."""
        return frozenset(WEEKDAYS.index(d) for d in self.weekend)


UTC_CALENDAR = BusinessCalendar(id="utc", timezone="UTC")
"""Used by terms that name no calendar: days end at midnight UTC, Saturday and Sunday are
the weekend, no holidays."""


# -- service levels --------------------------------------------------------------------


class ServiceLevel(_Entry):
    """By when one step is due: `3 business days`, `30 days` (calendar), `24 hours`."""

    amount: int = Field(ge=0, le=1000)
    unit: Unit

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError("say the unit: '3 business days', '30 days' or '24 hours'")
        if not isinstance(value, str):
            return value
        found = _DURATION.match(value)
        if found is None:
            raise ValueError("not a duration; write for example '3 business days', "
                             "'30 days' or '24 hours'")
        unit_text = found["unit"].split()[0]
        unit = {"business": "business_days", "calendar": "days", "day": "days",
                "days": "days", "hour": "hours", "hours": "hours"}[unit_text]
        return {"amount": int(found["n"]), "unit": unit}

    def label(self) -> str:
        """How the agreement states it: `1 business day`, `30 days`, `24 hours`."""
        word = {"business_days": "business day", "days": "day", "hours": "hour"}[self.unit]
        return f"{self.amount} {word}{'' if self.amount == 1 else 's'}"


# -- feedback --------------------------------------------------------------------------


class FeedbackTerms(_Entry):
    """What the referrer may learn of its referrals, and under which agreement.

    A status update is released to the referrer when its `status` is listed and its
    `business_status` is either empty or listed; the agreement's fields (and the rule
    packs) then decide which of its fields the referrer receives.
    """

    agreement: Identifier
    """A data sharing agreement from the receiver to the referrer for `referral_status`."""
    statuses: tuple[Symbol, ...] = Field(min_length=1)
    business_statuses: tuple[Symbol, ...] = ()

    def allows(self, status: str, business_status: str | None) -> bool:
        """Whether a status update with these values flows back to the referrer."""
        if status not in self.statuses:
            return False
        return business_status is None or business_status in self.business_statuses


# -- referral terms --------------------------------------------------------------------


class ReferralTerms(_Entry):
    """Service levels and the return path of one referral agreement."""

    id: Identifier
    agreement: Identifier
    """The data sharing agreement that carries the referrals (source: the referrer,
    recipient: the receiver)."""
    services: tuple[Symbol, ...] = ()
    """`referred_to_service` values these terms cover; empty: every service."""
    calendar: Identifier | None = None
    """The business calendar days are counted in; required for business days."""
    service_levels: dict[Step, ServiceLevel] = Field(default_factory=dict)
    feedback: FeedbackTerms | None = None
    description: str | None = None
    reference: str | None = None
    """Where the signed agreement's referral protocol is kept."""

    def covers(self, service: str) -> bool:
        return not self.services or service in self.services

    @property
    def levels(self) -> tuple[tuple[Step, ServiceLevel], ...]:
        """The service levels in step order."""
        return tuple((s, self.service_levels[s]) for s in STEPS if s in self.service_levels)


class CalendarsFile(_Entry):
    calendars: tuple[BusinessCalendar, ...]


class ReferralTermsFile(_Entry):
    referrals: tuple[ReferralTerms, ...]
