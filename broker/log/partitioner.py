"""Kafka's default partitioner, so a key lands on the same partition on every backend.

The embedded log and Kafka must agree on where a key goes: an operator who moves from
the embedded log to Kafka keeps per-key order only if partition numbers match. This is a
port of `org.apache.kafka.common.utils.Utils.murmur2` and of the keyed branch of Kafka's
default partitioner (`toPositive(murmur2(key)) % partitions`).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator, Sequence
from functools import lru_cache

from broker.errors import LogError
from broker.log.port import NewRecord

_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24
_MASK32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of `data`, as the signed 32-bit integer Java returns."""
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    whole_words = length // 4
    # Java reads each 4-byte block little-endian; unpacking them all at once is the
    # fastest way to do that in Python.
    for k in struct.unpack_from(f"<{whole_words}I", data):
        k = (k * _M) & _MASK32
        k ^= k >> _R
        k = (k * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k

    tail = length & ~3
    extra = length % 4
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK32

    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes | None, partitions: int, round_robin: int = 0) -> int:
    """The partition a record with `key` goes to in a topic of `partitions` partitions.

    A keyed record goes where Kafka's default partitioner puts it. A record without a
    key has no order to keep, so it goes to `round_robin % partitions`: callers pass a
    running counter to spread unkeyed records evenly.
    """
    if partitions < 1:
        raise LogError(f"a topic has at least one partition, not {partitions}")
    if key is None:
        return round_robin % partitions
    return _keyed_partition(key, partitions)


@lru_cache(maxsize=65_536)
def _keyed_partition(key: bytes, partitions: int) -> int:
    # A router appends each event's views under the same subject key, one per
    # subscription: hashing it once saves the pure-Python murmur2 (about 3 µs a key).
    # Kafka's toPositive: clear the sign bit rather than take abs(), so that
    # Integer.MIN_VALUE maps to 0 exactly as in Java.
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Placer:
    """Where each appended record goes, the same on both backends: a keyed record where
    Kafka's default partitioner puts it, unkeyed ones round robin per topic."""

    def __init__(self) -> None:
        self._unkeyed: dict[str, Iterator[int]] = {}

    def place(self, topic: str, records: Sequence[NewRecord], partitions: int) -> list[int]:
        """The partition of each record, in order; `LogError` for a key or value that
        is not bytes."""
        placed = []
        for record in records:
            key, value = record.key, record.value
            if not isinstance(value, bytes) or not (key is None or isinstance(key, bytes)):
                raise LogError(f"records appended to {topic!r} need bytes for key and value")
            if key is None:
                unkeyed = self._unkeyed.setdefault(topic, itertools.count())
                placed.append(partition_for(None, partitions, next(unkeyed)))
            else:
                placed.append(partition_for(key, partitions))
        return placed
