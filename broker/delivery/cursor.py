"""Subscriber cursors: where a subscriber has read up to in its delivery topic.

A cursor is the next offset to read in each partition, joined with dots (`"42"` for one
partition, `"42.17.0"` for three). Subscribers treat it as opaque and hand it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.errors import BrokerError
from broker.frozen_init import quick_init


class InvalidCursor(BrokerError, ValueError):
    """A cursor that no response of this subscription handed out (400 over HTTP)."""


@quick_init
@dataclass(frozen=True, slots=True)
class Cursor:
    offsets: tuple[int, ...]

    @classmethod
    def start(cls, partitions: int) -> Cursor:
        return cls((0,) * partitions)

    @classmethod
    def parse(cls, text: str | None, partitions: int) -> Cursor:
        if text is None or text == "":
            return cls.start(partitions)
        parts = text.split(".")
        if len(parts) != partitions or not all(p.isdigit() and len(p) <= 19 for p in parts):
            raise InvalidCursor(
                "cursor must be the 'next' value of an earlier response for this subscription"
            )
        return cls(tuple(int(p) for p in parts))

    def advanced(self, partition: int, next_offset: int) -> Cursor:
        offsets = list(self.offsets)
        offsets[partition] = max(offsets[partition], next_offset)
        return Cursor(tuple(offsets))

    def __str__(self) -> str:
        return ".".join(str(o) for o in self.offsets)
