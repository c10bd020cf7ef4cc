"""A short run of `bench/soak.py`, so the soak keeps working: steady publishing, a
webhook endpoint failing on a cycle, a pull subscriber, and no event lost."""

from __future__ import annotations

import pytest

from bench.soak import SoakConfig, run_soak

pytestmark = pytest.mark.slow


def test_a_short_soak_with_a_flaky_webhook_loses_no_event(tmp_path):
    config = SoakConfig(seconds=12, rate=20, cycle_seconds=6, fail_seconds=2,
                        sample_seconds=2, settle_timeout=60)
    report = run_soak(config, tmp_path)
    print("\n".join(report.lines()))

    assert report.acknowledged >= 100
    assert report.failures_answered > 0, "the webhook endpoint never failed"
    assert report.lost == {"hv-births": 0, "eval-births": 0}
    assert report.inconsistent == {"hv-births": 0, "eval-births": 0}
    assert report.bad_signatures == 0
    assert report.samples and all(s.rss_kib > 0 for s in report.samples)
