"""Repeated faults under steady publishing: every acknowledged event is delivered to
every subscription it is routed to and audited, none is lost, and duplicates are
recognisable. The full loop is `bench/fault_kill_loop.py`; this runs three faults per
layout so CI stays quick:

- embedded, `handoff serve` as by default (its router in a process it supervises):
  `kill -9` three times of it or its router process;
- Kafka (Tansu), split processes: `kill -9` of the api+delivery process, then of the
  router process, then a freeze of the Kafka-protocol broker (SIGSTOP/SIGCONT; the test
  build of Tansu keeps its log in memory, so killing it would lose every topic by design).
"""

from __future__ import annotations

import pytest

from bench.fault_kill_loop import KillLoopConfig, run_kill_loop

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend, expected_faults", [
    ("embedded", {"all", "all:router"}),
    ("kafka", {"api,delivery": 1, "router": 1, "kafka-freeze": 1}),
])
def test_repeated_faults_lose_nothing_and_deliver_nothing_unaudited(tmp_path, backend,
                                                                    expected_faults):
    config = KillLoopConfig(kills=3, rate=30, min_up=0.5, max_up=2.0, encryption=True,
                            backend=backend, seed=6)
    report = run_kill_loop(config, tmp_path)
    print("\n".join(report.lines()))

    if isinstance(expected_faults, dict):   # a fixed rotation of victims
        assert report.faults == expected_faults
    else:                                   # victims drawn from these processes
        assert set(report.faults) <= expected_faults and sum(report.faults.values()) == 3
    assert report.acknowledged >= 30
    assert set(report.subscriptions) == {"eval-births", "hv-births"}
    for sub, tally in report.subscriptions.items():
        assert tally.lost == 0, f"{sub}: {tally}"
        assert tally.unaudited == 0, f"{sub}: {tally}"
        assert tally.undecided == 0, f"{sub}: {tally}"
        assert tally.inconsistent == 0, f"{sub}: {tally}"
        assert tally.unique == report.acknowledged, f"{sub}: {tally}"
    assert report.audit_verified
