"""The referral funnel for evaluators: aggregates only, small cells suppressed.

For every (receiving program, referring agency, month the referral was made) the report
counts referrals that were **referred**, **accepted**, had a **first contact** and
**enrolled**; how many had a service level fall **due** by the report time and how many
of those missed one (**overdue**); and, in days, the median and 90th percentile between
steps. Rows for each program, each month and everything add those cells up.

Nothing person-level leaves: counts under the threshold (default 11) are suppressed, and
more cells are suppressed so that no hidden count can be worked out from the totals
(`referrals.suppression`). Day statistics are shown only where at least `threshold`
referrals contribute and the counts they describe are visible.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from referrals.entry import ReferralEntry
from referrals.suppression import Relation, suppress

COUNTS = ("referred", "accepted", "first_contact", "enrolled", "due", "overdue")
INTERVALS = (("referred", "accepted"), ("accepted", "first_contact"),
             ("first_contact", "enrolled"), ("referred", "enrolled"))
DAY_MS = 86_400_000
DEFAULT_THRESHOLD = 11
ALL = "*"

Level = Literal["cell", "program", "month", "total"]
GroupKey = tuple[str, str, str]
"""(program, source, month); `*` where a total row adds over that dimension."""


@dataclass(frozen=True, slots=True)
class DaysBetween:
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class FunnelRow:
    level: Level
    program: str
    source: str
    month: str
    counts: Mapping[str, int | None]
    """By `COUNTS`; None where suppressed."""
    days: Mapping[str, DaysBetween]
    """By interval name (`referred_to_accepted`); None where too few or suppressed."""
    share_overdue: float | None


@dataclass(frozen=True)
class FunnelReport:
    rows: tuple[FunnelRow, ...]
    threshold: int
    generated_at: int
    timezone: str
    suppressed: int
    """How many count cells are suppressed (primary and complementary alike)."""


def interval_name(start: str, end: str) -> str:
    return f"{start}_to_{end}"


@dataclass
class _Group:
    counts: dict[str, int]
    spans: dict[str, list[float]]


def _times(entry: ReferralEntry) -> dict[str, int]:
    assert entry.referral is not None
    found = {"referred": entry.referral.referred_at}
    for step in ("accepted", "first_contact", "enrolled"):
        if step in entry.steps:
            found[step] = entry.steps[step]
    return found


def _tally(entry: ReferralEntry, group: _Group, now_ms: int) -> None:
    times = _times(entry)
    for stage in ("referred", "accepted", "first_contact", "enrolled"):
        group.counts[stage] += stage in times
    due = [d for d in entry.deadlines if d.due_at <= now_ms]
    group.counts["due"] += bool(due)
    missed = [d for d in due if (s := entry.settled_at(d.step)) is None or s >= d.due_at]
    group.counts["overdue"] += bool(missed)
    for start, end in INTERVALS:
        if start in times and end in times:
            group.spans[interval_name(start, end)].append(
                max(0, times[end] - times[start]) / DAY_MS)


def funnel(entries: Iterable[ReferralEntry], now_ms: int, *,
           threshold: int = DEFAULT_THRESHOLD, timezone: str = "UTC") -> FunnelReport:
    """The funnel over every entry whose referral is known."""
    if threshold < 1:
        raise ValueError("the suppression threshold must be at least 1")
    zone = zoneinfo.ZoneInfo(timezone)
    groups: dict[GroupKey, _Group] = {}

    def group(key: GroupKey) -> _Group:
        if key not in groups:
            groups[key] = _Group({c: 0 for c in COUNTS},
                                 {interval_name(*i): [] for i in INTERVALS})
        return groups[key]

    for entry in entries:
        if entry.referral is None:
            continue
        month = dt.datetime.fromtimestamp(entry.referral.referred_at / 1000, zone
                                          ).strftime("%Y-%m")
        program = entry.program or entry.receiver or "unknown"
        cell = (program, entry.key.referrer, month)
        for key in (cell, (program, ALL, ALL), (ALL, ALL, month), (ALL, ALL, ALL)):
            _tally(entry, group(key), now_ms)
    order = sorted(groups, key=_row_order)
    relations = _relations(order)
    hidden: dict[str, frozenset[GroupKey]] = {
        column: suppress({k: groups[k].counts[column] for k in order}, relations,
                         threshold, order)
        for column in COUNTS}
    rows = tuple(_row(key, groups[key], hidden, threshold) for key in order)
    return FunnelReport(rows, threshold, now_ms, timezone,
                        sum(len(h) for h in hidden.values()))


def _row_order(key: GroupKey) -> tuple[int, str, str, str]:
    level = _level(key)
    return ({"cell": 0, "program": 1, "month": 2, "total": 3}[level], *key)


def _level(key: GroupKey) -> Level:
    program, source, month = key
    if program == ALL:
        return "total" if month == ALL else "month"
    return "program" if source == ALL else "cell"


def _relations(order: list[GroupKey]) -> list[Relation[GroupKey]]:
    cells = [k for k in order if _level(k) == "cell"]
    relations: list[Relation[GroupKey]] = []
    for key in order:
        level = _level(key)
        if level == "program":
            relations.append(Relation(key, tuple(c for c in cells if c[0] == key[0])))
        elif level == "month":
            relations.append(Relation(key, tuple(c for c in cells if c[2] == key[2])))
        elif level == "total":
            relations.append(Relation(key, tuple(k for k in order
                                                 if _level(k) == "program")))
            relations.append(Relation(key, tuple(k for k in order if _level(k) == "month")))
    return relations


def _row(key: GroupKey, group: _Group, hidden: Mapping[str, frozenset[GroupKey]],
         threshold: int) -> FunnelRow:
    counts = {c: (None if key in hidden[c] else group.counts[c]) for c in COUNTS}
    days: dict[str, DaysBetween] = {}
    for start, end in INTERVALS:
        name = interval_name(start, end)
        spans = group.spans[name]
        shown = (len(spans) >= threshold and counts[start] is not None
                 and counts[end] is not None)
        days[name] = DaysBetween(_round(statistics.median(spans)),
                                 _round(_p90(spans))) if shown else DaysBetween(None, None)
    due, overdue = counts["due"], counts["overdue"]
    share = round(overdue / due, 3) if due and overdue is not None else None
    return FunnelRow(_level(key), *key, counts=counts, days=days, share_overdue=share)


def _p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile: a value that occurred, never an interpolation."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def _round(value: float) -> float:
    return round(value, 1)
