"""A serving or routing process keeps what it built at start out of the cyclic
collector's sight, so full collections stop walking it (`broker.cli.heap`)."""

from __future__ import annotations

import gc
import weakref

import pytest

from broker.cli.heap import settle_heap


@pytest.mark.usefixtures("restored_collector")
def test_what_start_up_built_is_left_out_of_later_collections() -> None:
    built_at_start = {"policy": ["compiled", "plans"]}
    settle_heap()
    built_later = {"cache": ["an entry"]}
    tracked = {id(o) for o in gc.get_objects()}
    assert gc.get_freeze_count() > 0
    assert id(built_at_start) not in tracked
    assert id(built_later) in tracked


@pytest.mark.usefixtures("restored_collector")
def test_garbage_left_by_start_up_is_collected_not_frozen() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    a, b = Node(), Node()
    a.other, b.other = b, a          # a cycle only the collector can free
    still_there = weakref.ref(a)
    del a, b
    settle_heap()
    assert still_there() is None


@pytest.mark.usefixtures("restored_collector")
def test_young_objects_are_collected_less_often() -> None:
    settle_heap()
    assert gc.get_threshold()[0] >= 10_000


@pytest.mark.usefixtures("restored_collector")
def test_a_routing_process_collects_young_objects_less_often_the_larger_its_steps() -> None:
    from broker.cli.heap import YOUNG, router_young

    assert router_young(1) == YOUNG             # never more often than a serving process
    assert router_young(500) > router_young(100) >= YOUNG
    settle_heap(router_young(500))
    assert gc.get_threshold()[0] == router_young(500)
