"""The arithmetic of the benchmark's summary: percentiles and targets met or missed."""

from __future__ import annotations

import pytest

from bench.summary import Target, info, number, percentile, render, row


def test_p99_of_a_thousand_latencies_is_the_991st_smallest() -> None:
    values = [float(n) for n in range(1000, 0, -1)]
    assert percentile(values, .99) == 991.0
    assert percentile(values, .5) == 501.0
    assert percentile([7.0], .99) == 7.0


def test_percentile_refuses_no_values_and_a_quantile_out_of_range() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], .5)
    with pytest.raises(ValueError, match="not between 0 and 1"):
        percentile([1.0], 99)


def test_a_latency_under_its_limit_is_met_and_over_it_says_by_how_much() -> None:
    p99 = Target(50, "ms", strict=True)
    assert p99.verdict(49.9) == "met"
    assert p99.verdict(50) == "missed by 0 ms (1.0x the target)"
    assert p99.verdict(125) == "missed by 75 ms (2.5x the target)"
    assert p99.text() == "< 50 ms"


def test_a_ceiling_below_its_goal_says_how_far_short() -> None:
    goal = Target(5000, "ev/s", higher_is_better=True)
    assert goal.verdict(5000) == "met"
    assert goal.verdict(1500) == "missed by 3,500 ev/s (30% of the target)"
    assert goal.text() == ">= 5,000 ev/s"


def test_a_ratio_at_most_its_goal_is_met() -> None:
    ratio = Target(2.0, "x")
    assert ratio.verdict(2.0) == "met"
    assert ratio.verdict(2.25) == "missed by 0.25x"
    assert ratio.text() == "<= 2x"


def test_nothing_measured_is_said_so() -> None:
    assert Target(50, "ms").verdict(None) == "not measured"
    assert row("p99", None, Target(50, "ms")).measured == "-"


def test_numbers_read_as_a_person_writes_them() -> None:
    assert number(12345.6, "ev/s") == "12,346 ev/s"
    assert number(3.14159, "ms") == "3.1 ms"
    assert number(1.234, "x") == "1.23x"
    assert number(0) == "0"


def test_the_table_aligns_its_columns_under_a_header() -> None:
    lines = render([row("embedded p99", 72.0, Target(50, "ms", strict=True)),
                    info("floor (a)", "9,000 req/s", "56 µs CPU/request")])
    assert lines[0].startswith("figure")
    assert set(lines[1]) == {"-"}
    assert lines[2].endswith("missed by 22 ms (1.4x the target)")
    assert lines[2].index("72 ms") == lines[0].index("measured")
    assert lines[3].index("56 µs") == lines[0].index("floor, same run")
