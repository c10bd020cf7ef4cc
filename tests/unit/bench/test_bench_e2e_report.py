"""The closing table of bench/e2e_latency.py: which figure met its target."""

from __future__ import annotations

from bench.e2e_load import LatencyResult
from bench.e2e_report import EMBEDDED_P99, Figures, cpu_rows, latency_row, summary


def _latency(p99_ms: float, missing: int = 0) -> LatencyResult:
    values = tuple([1.0] * 98 + [p99_ms, p99_ms])
    return LatencyResult(rate=1000, seconds=1, events=100, refused=0, missing=missing,
                         latencies_ms=values, cpu_seconds=0.05, wall_seconds=1)


def test_a_fast_p99_with_events_that_never_arrived_is_a_miss() -> None:
    assert latency_row("p99", _latency(20), EMBEDDED_P99).verdict == "met"
    missed = latency_row("p99", _latency(20, missing=3), EMBEDDED_P99)
    assert missed.verdict == "missed: 3 deliveries did not arrive"
    assert "3 deliveries missing" in missed.measured


def _kafka_verdict(p99_ms: float, floor_p99_ms: float) -> str:
    figures = Figures(rate=1000, kafka=_latency(p99_ms), kafka_floor_p99=floor_p99_ms)
    line = next(line for line in summary(figures) if line.startswith("Kafka (Tansu) p99"))
    return line.rsplit("  ", 1)[-1]


def test_kafka_meets_its_target_under_150_ms_or_within_one_and_a_half_floors() -> None:
    assert _kafka_verdict(140, floor_p99_ms=20) == "met"
    assert _kafka_verdict(290, floor_p99_ms=200) == "met"          # <= 1.5 x 200 ms
    assert _kafka_verdict(400, floor_p99_ms=200).startswith("missed by 100 ms")


def test_a_phase_that_did_not_run_is_not_measured() -> None:
    figures = Figures(rate=1000, kafka_skipped="no Tansu binary")
    lines = summary(figures)
    assert any("not measured: no Tansu binary" in line for line in lines)
    assert next(line for line in lines if line.startswith("embedded p99")).endswith(
        "not measured")


def _cpu_verdicts(cpu_seconds: float, missing: int) -> list[str]:
    result = LatencyResult(rate=1000, seconds=1, events=1000, refused=0, missing=missing,
                           latencies_ms=(1.0,), cpu_seconds=cpu_seconds, wall_seconds=1)
    return [r.verdict for r in cpu_rows("embedded", result, floor_us=100, floor_says="a + b")]


def test_cpu_per_event_is_judged_against_twice_the_floor() -> None:
    assert _cpu_verdicts(0.15, missing=0) == ["met", "met"]                 # 150 µs, 1.5x
    assert _cpu_verdicts(0.30, missing=0)[1] == "missed by 1x"              # 300 µs, 3x


def test_a_broker_that_fell_behind_is_judged_only_where_both_bounds_agree() -> None:
    # 1,000 events offered, half of them delivered: 150..300 µs straddles the 200 µs goal.
    assert _cpu_verdicts(0.15, missing=1500)[0].startswith("undecided")
    # 300..600 µs: over the goal whichever bound is right.
    assert _cpu_verdicts(0.30, missing=1500)[0].startswith("missed by at least 100 µs")
    # 100..120 µs: under it whichever bound is right.
    assert _cpu_verdicts(0.10, missing=500) == ["met", "met"]
