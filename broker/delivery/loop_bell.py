"""Running calls on an event loop from other threads, one wake-up of the loop per burst.

Threads that learn of something the loop must act on (the embedded log's appends, told
by the thread that appended or the one receiving another process's doorbell; group
commit's answers to publish requests) hand the loop a call. Each
`call_soon_threadsafe` writes to the loop's wake-up socket and costs the loop a pass, so
a `LoopBell` queues the calls and schedules one run of all that arrive before the loop
gets round to them: a ring naming three subscriptions' topics, or fifty answered
publishes of one group commit, wake the loop once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable


class LoopBell:
    """Runs calls on one loop, queued from any thread, coalescing the wake-ups."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._due: dict[Callable[[], None], None] = {}
        """Calls to run, in order; one queued twice before the loop runs, runs once."""
        self._scheduled = False
        self.wakeups = 0
        """Times the loop was woken (for tests and benchmarks)."""

    def pull(self, event: asyncio.Event) -> Callable[[], None]:
        """A function any thread may call to set `event` on the loop soon after."""
        set_event = event.set
        return lambda: self.soon(set_event)

    def soon(self, call: Callable[[], None]) -> None:
        """Run `call` on the loop soon (from any thread); dropped if the loop closed."""
        with self._lock:
            self._due[call] = None
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody to wake
            self.loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        with self._lock:
            due, self._due = self._due, {}
            self._scheduled = False
            self.wakeups += 1
        for call in due:
            call()
