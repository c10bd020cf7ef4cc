"""The garbage collector of a long-running broker process.

CPython's cyclic collector looks at every tracked object of the generations it collects.
A process that serves or routes holds about 200,000 of them once it has started (the
modules, FastAPI's routes, compiled policy, schemas), and a full collection walked all of
them: measured at 1,000 births a second, the serving process ran a full collection every
second or so, each stopping every thread for 70-150 ms on the 2-core machine, which was
most of the publish p99. What is built at start lives as long as the process, so it is
moved out of the collector's sight once, when the process is ready; what the process
builds later (a reloaded policy, caches as they fill) is collected as before.

A process that routes collects its young objects less often still: a router step holds
every event's working values (decoded event, views, audit entries, deliveries: about 33
tracked objects an event, 16,600 at a step of 500) until its one write, so with young
collections every 10,000 allocations a full step ran one or two of them, each walking
the step's values only to find them alive, and every tenth a collection of the
generation they were moved to: 5-7 µs of an event's ~180 µs of router CPU. With the
threshold above what a full step holds, a step runs none (`python3
bench/router_step_cpu.py 30000 --linked --settled`; docs/operations.md, Memory).
"""

from __future__ import annotations

import gc

YOUNG = 10_000
"""Allocations (less deallocations) of tracked objects between young collections."""
ROUTER_YOUNG_PER_RECORD = 100
"""A routing process's young threshold per record of its largest step (`router_young`):
three times what a step of births to three subscriptions holds, with record linkage."""


def settle_heap(young: int = YOUNG) -> None:
    """Call once the process has built what it keeps for its lifetime, before it serves:
    collect what start-up left behind, then keep the survivors out of later
    collections (`gc.freeze`), and collect young objects every `young` allocations."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, 10, 10)


def router_young(batch_size: int) -> int:
    """The young threshold of a process that routes steps of up to `batch_size` records
    (`router.batch_size`): above what one step holds at once."""
    return max(YOUNG, ROUTER_YOUNG_PER_RECORD * batch_size)
