"""When to try a request again, and how long to wait.

Retried: a connection that failed or broke, and answers that say "later" (429, 502,
503, 504), waiting what `Retry-After` asks or an exponential backoff with jitter.
Publishing is safe to retry because the client gives every event its `event_id` before
the first attempt: a retry of an event the broker already took answers with the
original position and `duplicate: true`, and appends nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    """Tries in all, the first included; 1 never retries."""
    initial_delay: float = 0.2
    max_delay: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.2
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""

    def delays(self) -> Iterator[float]:
        """The waits before the second, third, ... attempt."""
        delay = self.initial_delay
        for _ in range(self.attempts - 1):
            yield min(self.max_delay, delay) * random.uniform(1 - self.jitter, 1 + self.jitter)
            delay *= self.multiplier

    def wait_for(self, backoff: float, retry_after: str | None) -> float:
        """The wait before the next attempt: `Retry-After` (seconds) when the broker
        gave it, within `max_delay`, else the backoff."""
        if retry_after is not None and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_delay)
        return backoff


NO_RETRIES = RetryPolicy(attempts=1)
