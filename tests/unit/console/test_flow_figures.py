"""Latency percentiles from histogram buckets, as the flow page shows them."""

from __future__ import annotations

import pytest

from broker.metrics_history import quantile

BUCKETS = ((0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (float("inf"), 100.0))


def test_quantiles_interpolate_inside_the_bucket_they_fall_in() -> None:
    assert quantile(BUCKETS, 0.5) == pytest.approx(0.01)
    assert quantile(BUCKETS, 0.7) == pytest.approx(0.01 + 0.09 * 0.5)
    assert quantile(BUCKETS, 0.95) == pytest.approx(0.1 + 0.9 * 0.5)


def test_no_observations_give_no_quantile() -> None:
    assert quantile(((0.1, 0.0), (float("inf"), 0.0)), 0.5) is None
    assert quantile((), 0.5) is None


def test_observations_past_the_last_bound_report_that_bound() -> None:
    assert quantile(((0.1, 1.0), (float("inf"), 10.0)), 0.99) == pytest.approx(0.1)
