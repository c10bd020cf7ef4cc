"""The delivery-latency histogram, observed once per router batch: what an operator's
dashboard reads must be what observing every view one by one would show."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from broker.metrics import LATENCY_BUCKETS, latency_tally, observe_counted
from tests.unit.broker.test_router import birth, route_all, routing


def samples(histogram: Histogram) -> dict[str, float]:
    return {f"{s.name}{s.labels.get('le', '')}": s.value
            for metric in histogram.collect() for s in metric.samples
            if not s.name.endswith("_created")}


def histogram() -> Histogram:
    return Histogram("latency_seconds", "", buckets=LATENCY_BUCKETS,
                     registry=CollectorRegistry())


@given(available=st.integers(0, 10**13),
       ingested=st.lists(st.integers(-10**6, 10**13), max_size=60))
def test_a_batch_observed_at_once_reads_as_each_value_observed(
        available: int, ingested: list[int]) -> None:
    one_by_one, at_once = histogram(), histogram()
    for at in ingested:
        one_by_one.observe(max(0, available - at) / 1000)
    observe_counted(at_once, latency_tally(available, ingested))
    expected, got = samples(one_by_one), samples(at_once)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        if name.endswith("_sum"):
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9)
        else:   # bucket and observation counts are exact
            assert got[name] == value, name


def test_bounds_are_inclusive_as_prometheus_reads_them() -> None:
    """A latency equal to a bucket's bound counts in that bucket, not the next."""
    at_once = histogram()
    observe_counted(at_once, latency_tally(1_000, [995, 990, 0]))  # 5 ms, 10 ms, 1 s
    got = samples(at_once)
    assert got["latency_seconds_bucket0.0025"] == 0
    assert got["latency_seconds_bucket0.005"] == 1
    assert got["latency_seconds_bucket0.01"] == 2
    assert got["latency_seconds_bucket0.5"] == 2
    assert got["latency_seconds_bucket1.0"] == 3
    assert got["latency_seconds_count"] == 3


def test_every_delivered_view_is_counted_in_its_subscriptions_latency() -> None:
    r = routing()
    r.publish(*(birth(f"MPI-{n}") for n in range(5)))
    route_all(r)
    for subscription in ("hv-births", "eval-births"):
        got = samples(r.metrics.delivery_latency.labels(subscription))
        assert got["handoff_delivery_latency_seconds_count"] == len(
            r.deliveries(subscription)) == 5
