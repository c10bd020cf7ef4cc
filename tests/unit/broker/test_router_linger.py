"""The router's linger: under steady load it waits a moment after a step's first records
and routes what arrived meanwhile in the same batch (one set of commits for all); a lone
event after a quiet spell is routed at once."""

from __future__ import annotations

import pytest

from broker import router as router_module
from broker.topics import delivery_topic
from tests.unit.broker.test_router import birth, routing


def test_a_lone_event_after_a_quiet_spell_is_routed_without_waiting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    r = routing(linger=0.5)
    slept: list[float] = []
    monkeypatch.setattr(router_module.time, "sleep", slept.append)
    assert r.router.step() == 0
    r.publish(birth("Q1"))
    assert r.router.step() == 1
    assert slept == []
    assert len(r.log.records(delivery_topic("hv-births"))) == 1


def test_under_steady_load_what_arrives_while_it_lingers_is_routed_in_the_same_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    r = routing(linger=0.003)
    r.publish(birth("S1"))
    assert r.router.step() == 1
    arriving = iter([birth("S3"), birth("S5")])
    slept: list[float] = []

    def meanwhile(seconds: float) -> None:
        slept.append(seconds)
        r.publish(next(arriving))

    monkeypatch.setattr(router_module.time, "sleep", meanwhile)
    r.publish(birth("S2"))
    assert r.router.step() == 2
    assert slept == [0.003]
    r.publish(birth("S4"))
    assert r.router.step() == 2  # S4, and S5 that arrived during this step's linger
    ids = [d["event_id"] for d in r.deliveries("hv-births")]
    assert ids == ["evt-S1", "evt-S2", "evt-S3", "evt-S4", "evt-S5"]


def test_no_linger_routes_each_poll_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    r = routing(linger=0.0)
    slept: list[float] = []
    monkeypatch.setattr(router_module.time, "sleep", slept.append)
    for n in range(3):
        r.publish(birth(f"N{n}"))
        assert r.router.step() == 1
    assert slept == []
