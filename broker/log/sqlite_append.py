"""Appending to the embedded log inside a write transaction: records to several topics,
and a consumer group's offsets beside them.

`SqliteEventLog` plans the rows outside its write lock (`plan_appends`: partition per
key, headers encoded) and writes them inside one transaction (`insert_planned`), with a
group's offsets when the caller commits in the same transaction (`save_offsets`).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from broker.errors import LogError
from broker.log.partitioner import Placer
from broker.log.port import AppendResult, NewRecord, TopicPartition
from broker.log.sqlite_storage import encode_headers

_INSERT_RECORD = (
    "INSERT INTO records (topic, partition, offset, key, value, headers, timestamp_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_ADVANCE_END = (
    "UPDATE partition_ends SET next_offset = next_offset + ? "
    "WHERE topic = ? AND partition = ? RETURNING next_offset"
)
_SAVE_OFFSET = (
    "INSERT INTO group_offsets (group_name, topic, partition, next_offset) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (group_name, topic, partition) "
    "DO UPDATE SET next_offset = excluded.next_offset"
)


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """One topic's records of an append, placed, as rows waiting for their offsets."""

    topic: str
    placed: list[int]
    rows: list[list[object]]


def plan_appends(placer: Placer, batches: Sequence[tuple[str, Sequence[NewRecord]]],
                 partitions: Callable[[str], int], now_ms: int) -> list[PlannedBatch]:
    """The rows of every batch, each record in the partition its key maps to."""
    planned = []
    for topic, records in batches:
        placed = placer.place(topic, records, partitions(topic))
        rows: list[list[object]] = [
            [topic, partition, 0, record.key, record.value, encode_headers(record.headers),
             now_ms if record.timestamp_ms is None else record.timestamp_ms]
            for record, partition in zip(records, placed, strict=True)]
        planned.append(PlannedBatch(topic, placed, rows))
    return planned


def insert_planned(db: sqlite3.Connection, planned: Sequence[PlannedBatch]
                   ) -> list[list[AppendResult]]:
    """Give the planned rows their offsets and insert them, inside the caller's write
    transaction; results per batch, in input order."""
    results: list[list[AppendResult]] = []
    for batch in planned:
        next_offsets = {}
        for partition, count in Counter(batch.placed).items():
            (end,) = db.execute(_ADVANCE_END, (count, batch.topic, partition)).fetchall()[0]
            next_offsets[partition] = end - count
        batch_results = []
        for row, partition in zip(batch.rows, batch.placed, strict=True):
            offset = next_offsets[partition]
            next_offsets[partition] = offset + 1
            row[2] = offset
            batch_results.append(AppendResult(partition, offset))
        if batch.rows:
            db.executemany(_INSERT_RECORD, batch.rows)
        results.append(batch_results)
    return results


def offset_rows(group: str, offsets: Mapping[TopicPartition, int],
                check_partition: Callable[[str, int], None]) -> list[tuple[str, str, int, int]]:
    """The rows that store `group`'s committed `offsets`, checked before any is written."""
    for (topic, partition), offset in offsets.items():
        check_partition(topic, partition)
        if offset < 0:
            raise LogError(f"a committed offset cannot be negative ({topic}/{partition})")
    return [(group, topic, partition, offset) for (topic, partition), offset in offsets.items()]


def save_offsets(db: sqlite3.Connection, rows: Sequence[tuple[str, str, int, int]]) -> None:
    """Store committed offsets (from `offset_rows`) inside the caller's transaction."""
    if rows:
        db.executemany(_SAVE_OFFSET, rows)
