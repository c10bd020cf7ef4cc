"""Where a migrated partition's records land in the target log (`handoff migrate`).

Kafka numbers what is appended densely; an embedded partition may have gaps (retention,
compaction). An `OffsetMap` translates each source offset, and each committed next offset,
to the target's.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left


class OffsetMap:
    """Where the records of one embedded partition land in the target: the n-th record
    (in offset order) at `base + n`."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.count = 0
        self._first = 0
        self._offsets: array[int] | None = None
        """Every source offset, kept only once the partition shows a gap."""

    def add(self, offset: int) -> int:
        """Note the next source record; return its index (0, 1, 2 …)."""
        if self.count == 0:
            self._first = offset
        elif self._offsets is None and offset != self._first + self.count:
            self._offsets = array("q", range(self._first, self._first + self.count))
        if self._offsets is not None:
            self._offsets.append(offset)
        self.count += 1
        return self.count - 1

    def target(self, offset: int) -> int:
        """The target offset matching source offset `offset` (a record's, or a committed
        next offset): `base` plus the number of source records before it."""
        if self._offsets is not None:
            return self.base + bisect_left(self._offsets, offset)
        return self.base + min(max(offset - self._first, 0), self.count)
