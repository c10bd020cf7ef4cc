"""`KafkaIdempotencyIndex`: which (agency, event_id) pairs were accepted, kept in Kafka.

    index = KafkaIdempotencyIndex(event_log, data_dir / "accepted-cache.db")

The truth is the compacted topic `_accepted` (4 partitions): one record per accepted
event, key `["<agency>","<event_id>"]` (JSON), value `{"topic", "partition", "offset"}`
(JSON) saying where the event went. It survives restarts and is shared by every API
process of the installation, so a publisher that re-sends an event after a timeout gets
the original answer from whichever process it reaches.

Lookups are served from a local SQLite cache of the topic (`cache_path`, which may be
deleted: it is rebuilt). Before answering, a lookup reads what other processes appended
since the last lookup, to the partitions holding the keys asked about, so an event
accepted by another process before the lookup started is found.

What is not promised here (unlike the embedded backend, whose index reads its ingress
log back): the index is written after the ingress append, so a crash between the two, a
failure to write `_accepted` (answered 503), or two API processes accepting the same
event at the same moment, can let one event be appended twice. Both copies carry the
same `event_id`, which is how subscribers recognise duplicates. When two entries exist
for one key, the first one read wins in every cache; compaction may later keep only the
other, so after a cache rebuild the answer may name the other copy.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from broker.errors import LogError
from broker.ingest.idempotency import Accepted
from broker.log.partitioner import partition_for
from broker.log.port import EventLog, LogRecord, NewRecord, TopicSpec

ACCEPTED_TOPIC = "_accepted"
ACCEPTED_PARTITIONS = 4
_READ_BATCH = 5000
_LOOKUP_CHUNK = 500
_SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted (
    source TEXT NOT NULL, event_id TEXT NOT NULL, topic TEXT NOT NULL,
    partition INTEGER NOT NULL, offset INTEGER NOT NULL, PRIMARY KEY (source, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS progress (partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);
"""


def accepted_key(source: str, event_id: str) -> bytes:
    """The `_accepted` record key of one event."""
    return json.dumps([source, event_id], separators=(",", ":"), ensure_ascii=False).encode()


def accepted_value(where: Accepted) -> bytes:
    """The `_accepted` record value saying where an event went."""
    return json.dumps({"topic": where.topic, "partition": where.partition,
                       "offset": where.offset}, separators=(",", ":"), sort_keys=True).encode()


def read_accepted(record: LogRecord) -> tuple[str, str, Accepted] | None:
    """(source, event_id, where) from an `_accepted` record; None if it is not one."""
    try:
        source, event_id = json.loads(record.key or b"")
        doc = json.loads(record.value)
        where = Accepted(str(doc["topic"]), int(doc["partition"]), int(doc["offset"]))
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(source, str) or not isinstance(event_id, str):
        return None
    return source, event_id, where


class KafkaIdempotencyIndex:
    """The `IdempotencyIndex` port on a compacted topic (see the module docstring)."""

    recovers_from_log = False
    """The truth is `_accepted`, not the ingress topics: an event appended to its topic
    whose `_accepted` record failed is not read back, and its publish fails (503)."""

    def __init__(self, event_log: EventLog, cache_path: Path) -> None:
        self._log = event_log
        self._lock = threading.Lock()
        event_log.ensure_topic(
            TopicSpec(ACCEPTED_TOPIC, partitions=ACCEPTED_PARTITIONS, compacted=True))
        self._partitions = event_log.partitions(ACCEPTED_TOPIC)
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(cache_path, check_same_thread=False,
                                       isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise LogError(
                f"cannot open the idempotency cache at {cache_path}: {exc}; it is a copy of "
                f"the {ACCEPTED_TOPIC} topic and may be deleted"
            ) from exc

    def lookup(self, source: str, event_ids: Iterable[str]) -> dict[str, Accepted]:
        """Where each of `event_ids` from `source` went, for those accepted before."""
        ids = list(event_ids)
        if not ids:
            return {}
        partitions = {partition_for(accepted_key(source, eid), self._partitions) for eid in ids}
        found: dict[str, Accepted] = {}
        with self._lock:
            self._catch_up(partitions)
            for start in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[start:start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._execute(
                    f"SELECT event_id, topic, partition, offset FROM accepted "  # noqa: S608
                    f"WHERE source = ? AND event_id IN ({marks})", (source, *chunk))
                for event_id, topic, partition, offset in rows:
                    found[event_id] = Accepted(topic, partition, offset)
        return found

    def remember(self, source: str, accepted: dict[str, Accepted]) -> None:
        """Record where newly accepted events went: in Kafka first, then in the cache."""
        if not accepted:
            return
        self._log.append(ACCEPTED_TOPIC, [
            NewRecord(value=accepted_value(where), key=accepted_key(source, event_id))
            for event_id, where in accepted.items()
        ])
        with self._lock:
            self._store([(source, eid, a.topic, a.partition, a.offset)
                         for eid, a in accepted.items()], {})

    def remember_all(self, accepted: Sequence[tuple[str, str, Accepted]]) -> None:
        by_source: dict[str, dict[str, Accepted]] = {}
        for source, event_id, where in accepted:
            by_source.setdefault(source, {})[event_id] = where
        for source, events in by_source.items():
            self.remember(source, events)

    def catch_up(self, topics: Iterable[str] = ()) -> None:
        """Read every partition of `_accepted` up to its end (lookups do this for the
        partitions they need); `topics` does not matter here."""
        with self._lock:
            self._catch_up(set(range(self._partitions)))

    def close(self) -> None:
        """Close the cache; the event log belongs to the caller."""
        with self._lock:
            self._db.close()

    # -- internals ------------------------------------------------------------------------

    def _execute(self, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise LogError(f"the idempotency cache failed: {exc}") from exc

    def _catch_up(self, partitions: set[int]) -> None:
        # Called with the lock held.
        progress = {int(partition): int(offset) for partition, offset in
                    self._execute("SELECT partition, next_offset FROM progress")}
        for partition in sorted(partitions):
            start = progress.get(partition, 0)
            end = self._log.end_offset(ACCEPTED_TOPIC, partition)
            while start < end:
                records = self._log.read(ACCEPTED_TOPIC, partition, start, _READ_BATCH)
                if not records:
                    break
                rows = [(source, eid, a.topic, a.partition, a.offset) for source, eid, a in
                        filter(None, map(read_accepted, records))]
                start = records[-1].offset + 1
                self._store(rows, {partition: start})

    def _store(self, rows: list[tuple[str, str, str, int, int]],
               progress: dict[int, int]) -> None:
        # Called with the lock held. The first entry of a key wins (INSERT OR IGNORE).
        try:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR IGNORE INTO accepted VALUES (?, ?, ?, ?, ?)",
                                     rows)
                self._db.executemany(
                    "INSERT INTO progress VALUES (?, ?) ON CONFLICT (partition) "
                    "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                    list(progress.items()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise LogError(f"the idempotency cache failed: {exc}") from exc
