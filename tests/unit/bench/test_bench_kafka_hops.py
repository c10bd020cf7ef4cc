"""The arithmetic of bench/kafka_hops.py: each hop from the right pair of times, and the
router's steps from its metrics."""

from __future__ import annotations

from bench.e2e_load import SUBSCRIPTIONS
from bench.kafka_hops import hops, steps_line


def _figure(lines: list[str], hop: str) -> str:
    (found,) = [text for text in lines if text.split()[0] == hop]
    return found


def test_each_hop_is_the_time_between_its_two_stamps() -> None:
    scheduled = {"e1": 1000.0, "e2": 2000.0, "e3": 3000.0}
    ingress = {"e1": 1010.0, "e2": 2020.0, "e3": 3030.0}
    delivered = {sub: {"e1": 1110.0, "e2": 2220.0, "e3": 3330.0} for sub in SUBSCRIPTIONS}
    arrived = {sub: {"e1": 1140.0, "e2": 2260.0, "e3": 3380.0} for sub in SUBSCRIPTIONS}

    lines = hops(scheduled, ingress, delivered, arrived)

    assert "p50    20.0 ms" in _figure(lines, "publish")
    assert "max    30.0 ms" in _figure(lines, "publish")
    assert "p50   200.0 ms" in _figure(lines, "router")
    assert "max   300.0 ms" in _figure(lines, "router")
    assert "p50    40.0 ms" in _figure(lines, "deliver")
    assert "max    50.0 ms" in _figure(lines, "deliver")
    assert "p50   260.0 ms" in _figure(lines, "whole")
    assert "max   380.0 ms" in _figure(lines, "whole")
    assert "0 deliveries missing" in _figure(lines, "whole")


def test_a_delivery_that_never_arrived_is_counted_missing_not_measured() -> None:
    scheduled = {"e1": 0.0}
    arrived = {sub: {} for sub in SUBSCRIPTIONS}
    arrived[SUBSCRIPTIONS[0]] = {"e1": 50.0}

    lines = hops(scheduled, {"e1": 5.0}, {sub: {"e1": 20.0} for sub in SUBSCRIPTIONS},
                 arrived)

    assert f"{len(SUBSCRIPTIONS) - 1} deliveries missing" in _figure(lines, "whole")
    assert "max    30.0 ms" in _figure(lines, "deliver")


def test_router_steps_are_the_difference_over_the_run() -> None:
    text = steps_line((1.0, 10.0, 100.0), (3.0, 30.0, 1100.0), 4.0)
    assert "router steps: 20, 50.0 records and 100.0 ms each" in text
    assert "50% of the 4 s" in text
    assert steps_line((1.0, 10.0, 100.0), (1.0, 10.0, 100.0), 4.0) == "  router steps: none"
