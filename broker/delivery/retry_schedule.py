"""When to try a webhook again: the attempt schedule, jitter and `Retry-After`.

The default schedule is the Standard Webhooks specification's: immediately, then after
5 seconds, 5 minutes, 30 minutes, 2 hours, 5 hours, 10 hours and 10 hours (eight
attempts over about 27 hours). Each delay is scaled by a random factor in
`[1 - jitter, 1 + jitter]` so endpoints that failed together are not retried together.
A receiver's `Retry-After` is honoured when it asks for longer than the schedule would
wait, up to `max_retry_after` seconds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetrySchedule:
    delays: tuple[float, ...]
    """Delay before attempt n (0-based) of one event, counted from the previous failure;
    `delays[0]` is the wait before the first attempt (0: immediately)."""
    jitter: float = 0.2
    max_retry_after: float = 86_400.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @classmethod
    def of(cls, delays: Sequence[float], jitter: float = 0.2,
           max_retry_after: float = 86_400.0) -> RetrySchedule:
        if not delays:
            raise ValueError("a retry schedule needs at least one attempt")
        return cls(tuple(float(d) for d in delays), jitter, max_retry_after)

    @property
    def attempts(self) -> int:
        """Attempts of one event before it is dead-lettered."""
        return len(self.delays)

    def delay_after(self, failed_attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failed_attempts`-th failure (1-based) before the
        next attempt."""
        base = self.delays[min(failed_attempts, len(self.delays) - 1)]
        delay = base * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay
