"""How long a following consumer's fetches wait at the broker: short while records flow,
long when they do not.

A fetch names the longest the broker may hold it when it finds nothing new
(`fetch_max_wait_ms`). Apache Kafka answers a held fetch as soon as a record arrives, so
a long wait costs no latency there and makes an idle follower nearly free. Tansu 0.6
answers only when the wait is over, so there the wait is the latency of every hop. Each
fetch also costs the client about a millisecond and a half of CPU (kafka-python 3.0), so
a short wait held forever keeps an idle process busy: 14% of a core at 10 ms.

`FetchWait` therefore stays short while records come at least every `grace_s`, then
doubles after every fetch that brings nothing, up to the idle wait, and drops back to
the short wait as soon as records come: a stream of records, even one that comes in
bursts (a router appends a batch every few tens of milliseconds), is followed with the
short wait, and an idle process asks a few times a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class FetchWait:
    """The fetch wait to use next, in milliseconds (see the module docstring).

    Callers poll in slices that need not match fetches, so `note` doubles the wait
    only once per wait's worth of time without records.
    """

    def __init__(self, busy_ms: int, idle_ms: int, grace_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.busy_ms = max(1, busy_ms)
        self.idle_ms = max(self.busy_ms, idle_ms)
        self.current_ms = self.busy_ms
        self._grace_s = grace_s
        self._clock = clock
        self._last_records = self._since = clock()

    def note(self, brought_records: bool) -> int:
        """Note whether the last poll brought records; return the wait to use next."""
        now = self._clock()
        if brought_records:
            self.current_ms = self.busy_ms
            self._last_records = self._since = now
        elif now - self._last_records < self._grace_s:
            self._since = now
        elif (now - self._since) * 1000 >= self.current_ms:
            self.current_ms = min(self.idle_ms, self.current_ms * 2)
            self._since = now
        return self.current_ms


def set_fetch_wait(consumer: Any, wait_ms: int) -> None:
    """Make `consumer`'s next fetch requests wait at most `wait_ms` at the broker.

    kafka-python reads `fetch_max_wait_ms` from its fetcher's config each time it builds
    a fetch request but offers no public way to change it after the consumer is made;
    where that attribute is missing (another kafka-python version), the consumer keeps
    the wait it was made with.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    config = getattr(fetcher, "config", None)
    if isinstance(config, dict) and "fetch_max_wait_ms" in config:
        config["fetch_max_wait_ms"] = int(wait_ms)
