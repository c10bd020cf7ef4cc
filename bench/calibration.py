"""A calibration figure to print beside benchmark results on a shared machine.

`calibration_ms()` times a fixed pure-Python loop: on a quiet machine it takes the same
time every run, so when it takes longer, other work was competing for the cores and the
figures beside it are pessimistic by about that ratio.
"""

from __future__ import annotations

import time


def calibration_ms(rounds: int = 3) -> float:
    """Best of `rounds` timings of a fixed loop, in milliseconds."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        total = 0
        for n in range(1_000_000):
            total += n * n % 7
        best = min(best, time.perf_counter() - started)
    return best * 1000
