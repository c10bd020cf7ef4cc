"""A routing process settles its heap so that a full router step runs no collection of
young objects: a step holds every event's working values until its one write, and a
collection then would walk them only to find them alive (`broker.cli.heap`)."""

from __future__ import annotations

import gc

import pytest

from bench.e2e_load import bench_policy, new_birth
from bench.inprocess import embedded_broker
from broker.cli.heap import router_young, settle_heap

STEP = 500



@pytest.mark.usefixtures("restored_collector")
def test_a_full_router_step_runs_no_young_collection_in_a_routing_process() -> None:
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    with embedded_broker(bench_policy, STEP) as bench:
        router = bench.broker.router
        assert router is not None
        bench.publish([new_birth()])
        bench.route(1)                          # compiles what the policy needs
        bench.publish([new_birth() for _ in range(STEP)])
        settle_heap(router_young(STEP))         # as the router process does once started
        gc.callbacks.append(count)
        try:
            routed = router.step()
        finally:
            gc.callbacks.remove(count)
    assert routed == STEP
    assert collections == []
