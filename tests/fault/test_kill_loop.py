"""Repeated `kill -9` of a running broker under steady publishing: every acknowledged
event is delivered to every subscription it is routed to and audited, none is lost, and
duplicates are recognisable. The full loop is `bench/fault_kill_loop.py`; this runs a
few kills so CI stays quick."""

from __future__ import annotations

import pytest

from bench.fault_kill_loop import KillLoopConfig, run_kill_loop

pytestmark = pytest.mark.slow


def test_repeated_kill_9_loses_nothing_and_delivers_nothing_unaudited(tmp_path):
    config = KillLoopConfig(kills=3, rate=40, min_up=0.5, max_up=2.0, encryption=True,
                            seed=6)
    report = run_kill_loop(config, tmp_path)
    print("\n".join(report.lines()))

    assert report.kills_survived == 3
    assert report.acknowledged >= 40
    for sub, tally in report.subscriptions.items():
        assert tally.lost == 0, f"{sub}: {tally}"
        assert tally.unaudited == 0, f"{sub}: {tally}"
        assert tally.undecided == 0, f"{sub}: {tally}"
        assert tally.inconsistent == 0, f"{sub}: {tally}"
        assert tally.unique == report.acknowledged, f"{sub}: {tally}"
    assert set(report.subscriptions) == {"eval-births", "hv-births"}
    assert report.audit_verified
