"""The funnel report as JSON, CSV and a terminal table (for the API and the CLI).

A suppressed count is `null` in JSON and `*` in CSV and the table, whether it was small
itself or hidden so a small one cannot be worked out: the two are never told apart. A
day statistic that is not shown (too few referrals, or a suppressed count) is `null`,
empty in CSV and `-` in the table. A total row has `*` for the dimension it adds over in
JSON and CSV, `(all)` in the table.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from referrals.report import ALL, COUNTS, INTERVALS, FunnelReport, FunnelRow, interval_name

SUPPRESSED = "*"
ALL_LABEL = "(all)"
"""A total row in the table; `*` in JSON and CSV."""
DEFINITIONS = {
    "referred": "referrals made in the month (by when the referring agency made them)",
    "accepted": "of those, accepted by the receiving program (or enrolled)",
    "first_contact": "of those, the program reached out to the family (a contact "
                     "attempted or made, or an enrollment)",
    "enrolled": "of those, the family enrolled (a status or an enrollment naming the "
                "referral)",
    "due": "referrals with at least one service level due by the report time",
    "overdue": "of those, referrals that missed at least one service level",
    "share_overdue": "overdue / due",
    "days": "median and 90th percentile (nearest rank) days between steps",
}


def _iso(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def to_json(report: FunnelReport) -> dict[str, Any]:
    return {
        "report": "referral_funnel",
        "generated_at": _iso(report.generated_at),
        "timezone": report.timezone,
        "threshold": report.threshold,
        "suppressed_cells": report.suppressed,
        "definitions": DEFINITIONS,
        "rows": [_row_json(row) for row in report.rows],
    }


def _row_json(row: FunnelRow) -> dict[str, Any]:
    return {
        "level": row.level, "program": row.program, "source": row.source,
        "month": row.month, **dict(row.counts), "share_overdue": row.share_overdue,
        "days": {name: {"median": d.median, "p90": d.p90} for name, d in row.days.items()},
    }


def _header() -> list[str]:
    days = [f"{interval_name(*i)}_{stat}_days" for i in INTERVALS for stat in ("median",
                                                                              "p90")]
    return ["level", "program", "source", "month", *COUNTS, "share_overdue", *days]


def _cells(row: FunnelRow) -> list[str]:
    counts = [SUPPRESSED if row.counts[c] is None else str(row.counts[c]) for c in COUNTS]
    days: list[str] = []
    for start, end in INTERVALS:
        d = row.days[interval_name(start, end)]
        days += ["" if d.median is None else str(d.median),
                 "" if d.p90 is None else str(d.p90)]
    share = "" if row.share_overdue is None else str(row.share_overdue)
    return [row.level, row.program, row.source, row.month, *counts, share, *days]


def to_csv(report: FunnelReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_header())
    for row in report.rows:
        writer.writerow(_cells(row))
    return out.getvalue()


def to_table(report: FunnelReport) -> str:
    head = ["PROGRAM", "SOURCE", "MONTH", "REFERRED", "ACCEPTED", "CONTACTED", "ENROLLED",
            "OVERDUE", "DAYS TO ENROLL (MEDIAN/P90)"]
    lines: list[list[str]] = [head]
    for row in report.rows:
        def count(name: str, r: FunnelRow = row) -> str:
            value = r.counts[name]
            return SUPPRESSED if value is None else str(value)
        overdue = ("-" if row.share_overdue is None
                   else f"{count('overdue')}/{count('due')} ({row.share_overdue:.0%})")
        days = row.days[interval_name("referred", "enrolled")]
        to_enroll = "-" if days.median is None else f"{days.median} / {days.p90}"
        program, source, month = (ALL_LABEL if v == ALL else v
                                  for v in (row.program, row.source, row.month))
        lines.append([program, source, month, count("referred"),
                      count("accepted"), count("first_contact"), count("enrolled"),
                      overdue, to_enroll])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip()
            for line in lines]
    text.append("")
    text.append(f"{SUPPRESSED} suppressed: under {report.threshold}, or hidden so that a "
                "small count cannot be worked out from the totals.")
    return "\n".join(text)
