"""Wall-clock time in milliseconds since the epoch, the unit of every broker timestamp.

Components that stamp times take a `Clock` (default `now_ms`), so tests can pass a fixed
or stepping one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
"""Returns milliseconds since 1970-01-01 UTC."""


def now_ms() -> int:
    return int(time.time() * 1000)
