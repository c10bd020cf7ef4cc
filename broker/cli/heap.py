"""The garbage collector of a long-running broker process.

CPython's cyclic collector looks at every tracked object of the generations it collects.
A process that serves or routes holds about 200,000 of them once it has started (the
modules, FastAPI's routes, compiled policy, schemas), and a full collection walked all of
them: measured at 1,000 births a second, the serving process ran a full collection every
second or so, each stopping every thread for 70-150 ms on the 2-core machine, which was
most of the publish p99. What is built at start lives as long as the process, so it is
moved out of the collector's sight once, when the process is ready; what the process
builds later (a reloaded policy, caches as they fill) is collected as before.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Call once the process has built what it keeps for its lifetime, before it serves:
    collect what start-up left behind, then keep the survivors out of later
    collections (`gc.freeze`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
