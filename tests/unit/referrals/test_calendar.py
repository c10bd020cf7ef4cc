"""Service levels counted in a business calendar, table-driven: weekends, holidays, the
end of a day in the calendar's time zone, daylight saving, and how levels are written."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from policy.referral_terms import BusinessCalendar, ServiceLevel
from referrals.calendar import due_at, is_business_day, nth_business_day
from tests.referral_cases import local_ms, local_text

WI = BusinessCalendar(id="wi", timezone="America/Chicago",
                      holidays=["2026-11-26", "2026-12-24", "2026-12-25"])

DUE = [
    # referral reached the broker (Madison time), service level, due (Madison time)
    ("2026-11-09 04:05", "1 business day", "2026-11-11 00:00"),      # Monday -> Tuesday
    ("2026-11-09 04:05", "3 business days", "2026-11-13 00:00"),     # -> Thursday
    ("2026-11-13 16:30", "1 business day", "2026-11-17 00:00"),      # Friday -> Monday
    ("2026-11-14 09:00", "1 business day", "2026-11-17 00:00"),      # Saturday -> Monday
    ("2026-11-25 10:00", "1 business day", "2026-11-28 00:00"),      # over Thanksgiving
    ("2026-12-23 10:00", "1 business day", "2026-12-29 00:00"),      # Dec 24, 25, weekend
    ("2026-11-14 09:00", "0 business days", "2026-11-17 00:00"),     # Saturday -> Monday
    ("2026-11-10 09:00", "0 business days", "2026-11-11 00:00"),     # the same day
    ("2026-11-09 04:05", "30 days", "2026-12-10 00:00"),             # calendar days
    ("2026-11-09 23:59", "1 day", "2026-11-11 00:00"),
    ("2026-11-09 04:05", "24 hours", "2026-11-10 04:05"),
    ("2026-10-30 12:00", "1 business day", "2026-11-03 00:00"),      # over the DST change
    ("2026-03-06 12:00", "1 business day", "2026-03-10 00:00"),      # into summer time
]


@pytest.mark.parametrize(("anchor", "level", "expected"), DUE,
                         ids=[f"{a} + {lv}" for a, lv, _ in DUE])
def test_when_a_step_is_due(anchor, level, expected):
    due = due_at(local_ms(anchor), ServiceLevel.model_validate(level), WI)
    assert local_text(due) == expected


def test_the_end_of_a_day_is_local_midnight_whatever_the_offset():
    # 3 November 2026 begins at 06:00 UTC (CST); 10 March at 05:00 UTC (CDT).
    assert due_at(local_ms("2026-10-30 12:00"), ServiceLevel.model_validate(
        "1 business day"), WI) % 86_400_000 == 6 * 3_600_000
    assert due_at(local_ms("2026-03-06 12:00"), ServiceLevel.model_validate(
        "1 business day"), WI) % 86_400_000 == 5 * 3_600_000


def test_a_four_day_week():
    calendar = BusinessCalendar(id="x", timezone="UTC",
                                weekend=["friday", "saturday", "sunday"])
    thursday = dt.date(2026, 11, 12)
    assert not is_business_day(thursday + dt.timedelta(days=1), calendar)
    assert nth_business_day(thursday, 1, calendar).isoformat() == "2026-11-16"


LEVELS = [
    ("1 business day", 1, "business_days", "1 business day"),
    ("3 business days", 3, "business_days", "3 business days"),
    ("30 days", 30, "days", "30 days"),
    ("30 calendar days", 30, "days", "30 days"),
    ("1 day", 1, "days", "1 day"),
    ("24 hours", 24, "hours", "24 hours"),
    ("  2   business  days ", 2, "business_days", "2 business days"),
]


@pytest.mark.parametrize(("text", "amount", "unit", "label"), LEVELS)
def test_service_levels_are_written_as_text(text, amount, unit, label):
    level = ServiceLevel.model_validate(text)
    assert (level.amount, level.unit, level.label()) == (amount, unit, label)


@pytest.mark.parametrize("text", ["3 busines days", "three days", "-1 days", "3", 3,
                                  "3 weeks", "12345 days"])
def test_a_service_level_that_is_not_a_duration_is_refused(text):
    with pytest.raises(ValidationError):
        ServiceLevel.model_validate(text)


@pytest.mark.parametrize(("fields", "message"), [
    ({"timezone": "America/Madison"}, "unknown time zone 'America/Madison'"),
    ({"timezone": "UTC", "weekend": ["monday", "tuesday", "wednesday", "thursday",
                                     "friday", "saturday", "sunday"]}, "every day"),
    ({"timezone": "UTC", "holidays": ["2026-12-25", "2026-12-25"]}, "listed twice"),
    ({"timezone": "UTC", "holidays": ["2026-13-01"]}, "valid date"),
])
def test_a_calendar_that_cannot_count_days_is_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        BusinessCalendar.model_validate({"id": "x", **fields})
