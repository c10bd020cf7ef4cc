"""Waking readers on an event loop from the threads that learn of appends.

The embedded log tells of appends from the thread that learns of them (the one that
appended, or the thread receiving another process's doorbell). Each reader on the loop
(a `broker.delivery.fanout.Hub`) has an `asyncio.Event`; a `LoopBell` sets the events of
every reader an announcement names through one `call_soon_threadsafe` per burst: a ring
naming three subscriptions' topics, or three rings arriving before the loop got round to
them, wake the loop once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable


class LoopBell:
    """Sets asyncio events of one loop from any thread, coalescing the wake-ups."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._rung: set[asyncio.Event] = set()
        self._scheduled = False
        self.wakeups = 0
        """Times the loop was woken (for tests and benchmarks)."""

    def pull(self, event: asyncio.Event) -> Callable[[], None]:
        """A function any thread may call to set `event` on the loop soon after."""
        return lambda: self._ring(event)

    def _ring(self, event: asyncio.Event) -> None:
        with self._lock:
            self._rung.add(event)
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody to wake
            self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            rung, self._rung = self._rung, set()
            self._scheduled = False
            self.wakeups += 1
        for event in rung:
            event.set()
