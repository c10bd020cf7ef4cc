"""Repeated faults under steady publishing: every acknowledged event is delivered to
every subscription it is routed to and audited, none is lost, and duplicates are
recognisable. The full loop is `bench/fault_kill_loop.py`; this runs three faults per
layout so CI stays quick:

- embedded, one process: `kill -9` of `handoff serve` three times;
- Kafka (Tansu), split processes: `kill -9` of the api+delivery process, then of the
  router process, then a freeze of the Kafka-protocol broker (SIGSTOP/SIGCONT; the test
  build of Tansu keeps its log in memory, so killing it would lose every topic by design).
"""

from __future__ import annotations

import pytest

from bench.fault_kill_loop import KillLoopConfig, run_kill_loop

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend, expected_faults", [
    ("embedded", {"all": 3}),
    ("kafka", {"api,delivery": 1, "router": 1, "kafka-freeze": 1}),
])
def test_repeated_faults_lose_nothing_and_deliver_nothing_unaudited(tmp_path, backend,
                                                                    expected_faults):
    config = KillLoopConfig(kills=3, rate=30, min_up=0.5, max_up=2.0, encryption=True,
                            backend=backend, seed=6)
    report = run_kill_loop(config, tmp_path)
    print("\n".join(report.lines()))

    assert report.faults == expected_faults
    assert report.acknowledged >= 30
    assert set(report.subscriptions) == {"eval-births", "hv-births"}
    for sub, tally in report.subscriptions.items():
        assert tally.lost == 0, f"{sub}: {tally}"
        assert tally.unaudited == 0, f"{sub}: {tally}"
        assert tally.undecided == 0, f"{sub}: {tally}"
        assert tally.inconsistent == 0, f"{sub}: {tally}"
        assert tally.unique == report.acknowledged, f"{sub}: {tally}"
    assert report.audit_verified
