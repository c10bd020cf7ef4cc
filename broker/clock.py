"""Wall-clock time in milliseconds since the epoch, the unit of every broker timestamp.

Components that stamp times take a `Clock` (default `now_ms`), so tests can pass a fixed
or stepping one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], int]
"""Returns milliseconds since 1970-01-01 UTC."""


def now_ms() -> int:
    return int(time.time() * 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(moment: datetime) -> int:
    """`moment` in milliseconds since the epoch; a time without a zone is read as UTC.
    Any datetime converts, from year 1 to 9999 (`datetime.timestamp` refuses times that
    fall outside the platform's range once the local zone is applied)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)
