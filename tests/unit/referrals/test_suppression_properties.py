"""Complementary suppression, tested against an independent calculation.

For random funnels (programs x sources x months, counts often small), every count under
the threshold is hidden, no total minus its visible cells isolates a hidden cell, and no
hidden cell is determined by any combination of the published relations. The last is
checked here with ranks over a prime field (a cell is determined exactly when dropping
its column lowers the rank of the hidden part by one), not with the solver's own
rational elimination.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from referrals.report import ALL, COUNTS, _level, _relations, funnel
from referrals.suppression import Relation, suppress
from tests.referral_cases import DAY, SIMPLE_POLICY, T0, ledger_with

P = 2_147_483_647


def rank_mod_p(rows: list[list[int]]) -> int:
    rows = [[v % P for v in r] for r in rows if any(r)]
    rank, width = 0, len(rows[0]) if rows else 0
    for col in range(width):
        pivot = next((r for r in range(rank, len(rows)) if rows[r][col]), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        inverse = pow(rows[rank][col], P - 2, P)
        rows[rank] = [v * inverse % P for v in rows[rank]]
        for r in range(len(rows)):
            if r != rank and rows[r][col]:
                f = rows[r][col]
                rows[r] = [(a - f * b) % P for a, b in zip(rows[r], rows[rank], strict=True)]
        rank += 1
    return rank


def exposed(hidden: list, relations: list[Relation]) -> list:
    matrix = [[(1 if r.total == h else 0) - sum(m == h for m in r.members) for h in hidden]
              for r in relations]
    full = rank_mod_p(matrix)
    return [h for n, h in enumerate(hidden)
            if rank_mod_p([row[:n] + row[n + 1:] for row in matrix]) == full - 1]


@st.composite
def tables(draw):
    programs = draw(st.integers(1, 3))
    sources = draw(st.integers(1, 3))
    months = draw(st.integers(1, 3))
    return {(f"p{p}", f"s{s}", f"2026-{m + 1:02d}"): draw(st.one_of(
                st.integers(0, 12), st.integers(0, 60)))
            for p in range(programs) for s in range(sources) for m in range(months)
            if draw(st.booleans()) or (p, s, m) == (0, 0, 0)}


def margins(cells: dict) -> dict:
    values = dict(cells)
    for (p, _source, m), v in cells.items():
        for key in ((p, ALL, ALL), (ALL, ALL, m), (ALL, ALL, ALL)):
            values[key] = values.get(key, 0) + v
    return values


@settings(max_examples=300, deadline=None)
@given(tables(), st.integers(2, 15))
def test_no_suppressed_cell_can_be_recomputed(cells, threshold):
    values = margins(cells)
    order = sorted(values, key=lambda k: ({"cell": 0, "program": 1, "month": 2,
                                           "total": 3}[_level(k)], *k))
    relations = _relations(order)
    hidden = suppress(values, relations, threshold, order)
    assert {k for k, v in values.items() if 0 < v < threshold} <= hidden
    for relation in relations:
        # A total minus the visible cells never isolates one hidden cell.
        assert sum(c in hidden for c in relation.cells) != 1
    assert exposed(sorted(hidden, key=order.index), relations) == []


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["nfp-dane", "pat-rock", "ehs"]),
                          st.sampled_from(["cw-hotline", "county-general"]),
                          st.integers(1, 30)), min_size=1, max_size=6, unique_by=lambda
                t: t[:2]))
def test_the_report_suppresses_the_same_way_in_every_column(groups):
    ledger = ledger_with([(p, s, n, n * 3 // 4, n // 2, n // 3) for p, s, n in groups])
    report = funnel(ledger.store.scan(), T0 + 60 * DAY, threshold=11)
    keys = [(r.program, r.source, r.month) for r in report.rows]
    relations = _relations(keys)
    for column in COUNTS:
        hidden = [k for k, r in zip(keys, report.rows, strict=True) if r.counts[column] is None]
        assert exposed(hidden, relations) == [], column
    assert SIMPLE_POLICY.terms  # the ledger ran under the simple terms
