"""The referral funnel: counts that match the events, days between steps, small cells
and their complements suppressed, nothing person-level, three renderings."""

from __future__ import annotations

import csv
import io
import json

import pytest

from referrals.ledger import ReferralLedger
from referrals.report import funnel
from referrals.report_render import to_csv, to_json, to_table
from referrals.store import InMemoryLedgerStore
from tests.referral_cases import DAY, SIMPLE_POLICY, T0, ledger_with, referral

NOW = T0 + 60 * DAY


def rows(report):
    return {(r.program, r.source, r.month): r for r in report.rows}


def test_counts_match_the_events_and_days_are_measured():
    ledger = ledger_with([("nfp-dane", "cw-hotline", 30, 24, 20, 12)])
    report = funnel(ledger.store.scan(), NOW)
    cell = rows(report)[("nfp-dane", "cw-hotline", "2026-11")]
    assert dict(cell.counts) == {"referred": 30, "accepted": 24, "first_contact": 20,
                                 "enrolled": 12, "due": 30, "overdue": 18}
    assert cell.share_overdue == 0.6
    assert cell.days["referred_to_accepted"].median == 0.8
    assert cell.days["accepted_to_first_contact"].median == 1.2
    assert cell.days["referred_to_enrolled"].median == 5.0
    assert cell.days["referred_to_enrolled"].p90 == 5.0


def test_a_small_cell_and_its_complement_are_suppressed():
    ledger = ledger_with([("nfp-dane", "cw-hotline", 30, 24, 20, 12),
                          ("nfp-dane", "county-general", 4, 3, 3, 2),
                          ("pat-rock", "cw-hotline", 25, 20, 15, 11)])
    report = funnel(ledger.store.scan(), NOW)
    by = rows(report)
    small = by[("nfp-dane", "county-general", "2026-11")]
    assert [small.counts[c] for c in ("referred", "accepted", "first_contact", "enrolled")
            ] == [None] * 4
    assert small.counts["due"] == 0  # no terms for county-general: nothing due; zero shows
    # The program total is visible; so the program's other cell must be hidden too,
    # else 34 - 30 gives the small cell away.
    assert by[("nfp-dane", "*", "*")].counts["referred"] == 34
    assert by[("nfp-dane", "cw-hotline", "2026-11")].counts["referred"] is None
    # And the month total would give that one away through the other program.
    month = by[("*", "*", "2026-11")].counts["referred"]
    hidden = [r for r in report.rows if r.level == "cell" and r.counts["referred"] is None]
    assert len(hidden) >= 2 and month is not None
    assert all(r.days["referred_to_enrolled"].median is None for r in hidden)


def test_no_suppressed_count_can_be_worked_out_from_a_total():
    ledger = ledger_with([("a", "cw-hotline", 15, 12, 10, 3),
                          ("a", "county-general", 13, 12, 11, 9),
                          ("b", "cw-hotline", 40, 30, 20, 10),
                          ("b", "county-general", 2, 1, 1, 0),
                          ("c", "cw-hotline", 12, 11, 11, 11)])
    report = funnel(ledger.store.scan(), NOW)
    cells = [r for r in report.rows if r.level == "cell"]
    for column in ("referred", "accepted", "first_contact", "enrolled", "overdue"):
        for program in {r.program for r in cells}:
            members = [r for r in cells if r.program == program]
            total = rows(report)[(program, "*", "*")].counts[column]
            hidden = [r for r in members if r.counts[column] is None]
            # Total minus the visible cells must never isolate a single hidden cell.
            assert total is None or len(hidden) != 1, (column, program)


def test_nothing_person_level_leaves():
    ledger = ledger_with([("nfp-dane", "cw-hotline", 30, 24, 20, 12)])
    text = json.dumps(to_json(funnel(ledger.store.scan(), NOW)))
    assert "MPI-" not in text and "nfp-dane-cw-hotline-" not in text


def test_the_threshold_is_configurable():
    ledger = ledger_with([("nfp-dane", "cw-hotline", 5, 4, 3, 2)])
    assert rows(funnel(ledger.store.scan(), NOW, threshold=5))[
        ("nfp-dane", "cw-hotline", "2026-11")].counts["referred"] == 5
    assert rows(funnel(ledger.store.scan(), NOW))[
        ("nfp-dane", "cw-hotline", "2026-11")].counts["referred"] is None
    with pytest.raises(ValueError):
        funnel([], NOW, threshold=0)


def test_months_follow_the_report_time_zone():
    ledger = ReferralLedger(InMemoryLedgerStore(), SIMPLE_POLICY)
    # 1 December 02:00 UTC is still 30 November in Madison.
    ledger.apply([referral(f"r{n}", at=1796090400000) for n in range(12)])
    assert {r.month for r in funnel(ledger.store.scan(), NOW,
                                    timezone="America/Chicago").rows} == {"2026-11", "*"}
    assert {r.month for r in funnel(ledger.store.scan(), NOW).rows} == {"2026-12", "*"}


def test_renderings_agree():
    ledger = ledger_with([("nfp-dane", "cw-hotline", 30, 24, 20, 12),
                          ("nfp-dane", "county-general", 4, 3, 3, 2)])
    report = funnel(ledger.store.scan(), NOW, timezone="America/Chicago")
    data = to_json(report)
    assert data["threshold"] == 11 and data["suppressed_cells"] == report.suppressed
    parsed = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert len(parsed) == len(data["rows"]) == len(report.rows)
    for row, line in zip(data["rows"], parsed, strict=True):
        assert line["referred"] == ("*" if row["referred"] is None else str(row["referred"]))
    table = to_table(report)
    assert table.splitlines()[0].split()[:3] == ["PROGRAM", "SOURCE", "MONTH"]
    assert "* suppressed: under 11, or hidden" in table
    assert table.splitlines()[-3].startswith("(all)")
