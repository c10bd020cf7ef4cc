"""When a step is due: service levels counted in a business calendar.

A service level counts from an anchor instant (when the referral reached the broker):

- `N hours`: exactly N hours later;
- `N days`: at the end of the Nth calendar day after the anchor's day;
- `N business days`: at the end of the Nth business day after the anchor's day (a
  business day is neither a weekend day nor a holiday). `0 business days` is the end of
  the anchor's day, or of the next business day when the anchor falls on a day off.

"The end of a day" is the following midnight in the calendar's time zone, so a referral
made on Friday afternoon with `1 business day` is due by midnight ending Monday, and
daylight saving changes move the instant, not the local midnight.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import lru_cache

from policy.referral_terms import BusinessCalendar, ServiceLevel

HOUR_MS = 3_600_000
_DAY = dt.timedelta(days=1)
_MAX_DAYS = 10 * 366
"""A calendar with almost no business days must not loop for ever."""


@lru_cache(maxsize=64)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@lru_cache(maxsize=64)
def _days_off(calendar: BusinessCalendar) -> tuple[frozenset[int], frozenset[dt.date]]:
    return calendar.weekend_numbers, frozenset(calendar.holidays)


def is_business_day(day: dt.date, calendar: BusinessCalendar) -> bool:
    weekend, holidays = _days_off(calendar)
    return day.weekday() not in weekend and day not in holidays


def local_date(at_ms: int, calendar: BusinessCalendar) -> dt.date:
    """The calendar day, in the calendar's time zone, that an instant falls on."""
    return dt.datetime.fromtimestamp(at_ms / 1000, _zone(calendar.timezone)).date()


def end_of_day(day: dt.date, calendar: BusinessCalendar) -> int:
    """Epoch milliseconds of the local midnight that ends `day`."""
    after = dt.datetime.combine(day + _DAY, dt.time(0), tzinfo=_zone(calendar.timezone))
    return int(after.timestamp() * 1000)


@lru_cache(maxsize=4096)
def nth_business_day(start: dt.date, n: int, calendar: BusinessCalendar) -> dt.date:
    """The Nth business day after `start` (`n == 0`: `start` itself if it is one, else
    the next business day)."""
    day = start
    if n == 0:
        for _ in range(_MAX_DAYS):
            if is_business_day(day, calendar):
                return day
            day += _DAY
        raise ValueError("no business day within ten years")
    counted = 0
    for _ in range(_MAX_DAYS):
        day += _DAY
        if is_business_day(day, calendar):
            counted += 1
            if counted == n:
                return day
    raise ValueError("not enough business days within ten years")


def due_at(anchor_ms: int, level: ServiceLevel, calendar: BusinessCalendar) -> int:
    """Epoch milliseconds by which a step with this service level is due."""
    if level.unit == "hours":
        return anchor_ms + level.amount * HOUR_MS
    start = local_date(anchor_ms, calendar)
    if level.unit == "days":
        return end_of_day(start + level.amount * _DAY, calendar)
    return end_of_day(nth_business_day(start, level.amount, calendar), calendar)
