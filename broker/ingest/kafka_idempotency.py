"""`KafkaIdempotencyIndex`: which (agency, event_id) pairs were accepted, kept in Kafka.

    index = KafkaIdempotencyIndex(event_log, data_dir / "accepted-cache.db")

The truth is the compacted topic `_accepted` (4 partitions): one record per accepted
event, key `["<agency>","<event_id>"]` (JSON), value `{"topic", "partition", "offset"}`
(JSON) saying where the event went. It survives restarts and is shared by every API
process of the installation, so a publisher that re-sends an event after a timeout gets
the original answer from whichever process it reaches.

Lookups are answered from a local SQLite cache of the topic (`cache_path`, which may be
deleted: it is rebuilt), with no request to Kafka: publishing asks before every group
commit. `remember` puts what this process accepted into the cache at once and hands
the `_accepted` records to a writer thread, so a group commit does not wait for a
second append; this process's own records are never read back. A background thread
asks for the topic's end offsets every `_FOLLOW_S` (one request) and copies in what
other API processes appended. It does not follow the topic
with fetches: in the usual deployment nothing but this process writes it, and a
follower would spend its CPU decoding this process's own records. While the thread has
not confirmed the cache current for `_FRESH_S` (at start, or while Kafka fails), a
lookup reads the partitions it needs up to their ends itself.

What is not promised here (unlike the embedded backend, whose index reads its
ingress log back): the index is written after the ingress append, so a crash before
the writer thread got the `_accepted` records into Kafka (this process's own cache
keeps them), a failure to write the cache (answered 503), or two API processes
accepting the same event within about `_WRITE_LINGER_S` + `_FOLLOW_S` of each other (a
re-send after a timeout comes much later), can let one event be appended twice. Both
copies carry the same `event_id`, which is how subscribers recognise duplicates. When
two entries exist for one key, the first one read wins in every cache; compaction may
later keep only the other, so after a cache rebuild the answer may name the other copy.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from broker.errors import HandoffError, LogError
from broker.ingest.idempotency import Accepted
from broker.log.partitioner import partition_for
from broker.log.port import AppendResult, EventLog, LogRecord, NewRecord, TopicSpec

log = logging.getLogger("handoff.ingest")

ACCEPTED_TOPIC = "_accepted"
ACCEPTED_PARTITIONS = 4
_READ_BATCH = 5000
_LOOKUP_CHUNK = 500
_FOLLOW_S = 0.25
"""How often the follower asks for the topic's end offsets."""
_FRESH_S = 2.0
"""Lookups trust the cache while the follower confirmed it current this recently."""
_WRITE_LINGER_S = 0.05
"""How long the writer gathers `remember` calls after the first before appending them:
one append (a produce request and a flush) for all of them, rather than about one per
group commit, whose flushes would also wait for these records."""
_WRITE_ATTEMPTS = 3
_ERROR_BACKOFF_S = 1.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted (
    source TEXT NOT NULL, event_id TEXT NOT NULL, topic TEXT NOT NULL,
    partition INTEGER NOT NULL, offset INTEGER NOT NULL, PRIMARY KEY (source, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS progress (partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class _Write:
    """One `remember` call, for the writer thread."""

    seq: int
    source: str
    accepted: dict[str, Accepted]


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
    whose `_accepted` record could not be written is known to this process's cache
    only, and a failure to write the cache fails the publish (503)."""

    def __init__(self, event_log: EventLog, cache_path: Path, follow: bool = True) -> None:
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
        # Guarded by _lock: the next offset to copy per partition (everything before it
        # is in the cache), as stored in the cache's `progress` table.
        self._progress = {int(partition): int(offset) for partition, offset in
                          self._execute("SELECT partition, next_offset FROM progress")}
        self._current_at = float("-inf")
        """When the follower last saw nothing in the topic past the cache (monotonic)."""
        self._submitted = 0
        """`remember` calls so far; the writer has finished the first `_settled`."""
        self._settled = 0
        self._remembered = threading.Condition(self._lock)
        self._writes: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, daemon=True,
                                        name="handoff-accepted-writer")
        self._writer.start()
        self._stop = threading.Event()
        self._closed = False
        self._follower: threading.Thread | None = None
        if follow:
            self._follower = threading.Thread(target=self._follow, daemon=True,
                                              name="handoff-accepted-follower")
            self._follower.start()

    def lookup(self, source: str, event_ids: Iterable[str]) -> dict[str, Accepted]:
        """Where each of `event_ids` from `source` went, for those accepted before."""
        ids = list(event_ids)
        if not ids:
            return {}
        partitions = {partition_for(accepted_key(source, eid), self._partitions) for eid in ids}
        found: dict[str, Accepted] = {}
        with self._lock:
            if time.monotonic() - self._current_at > _FRESH_S:
                self._catch_up(self._ends(partitions))
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
        """Record where newly accepted events went: in the cache at once, in Kafka by the
        writer thread."""
        if not accepted:
            return
        with self._lock:
            self._store([(source, eid, a.topic, a.partition, a.offset)
                         for eid, a in accepted.items()], {})
            self._submitted += 1
            self._writes.put(_Write(self._submitted, source, dict(accepted)))

    def remember_all(self, accepted: Sequence[tuple[str, str, Accepted]]) -> None:
        by_source: dict[str, dict[str, Accepted]] = {}
        for source, event_id, where in accepted:
            by_source.setdefault(source, {})[event_id] = where
        for source, events in by_source.items():
            self.remember(source, events)

    def pending_since(self) -> float | None:
        """None: `remember` stores in the cache at once (its own thread writes Kafka)."""
        return None

    def flush(self) -> None:
        """Nothing to do: `remember` stores in the cache at once."""

    def catch_up(self, topics: Iterable[str] = ()) -> None:
        """Read every partition of `_accepted` up to its end (lookups do this for the
        partitions they need, when the follower has not yet); `topics` does not matter here."""
        with self._lock:
            self._catch_up(self._ends(set(range(self._partitions))))

    def close(self) -> None:
        """Write what `remember` was given to Kafka, stop following and close the cache;
        the event log belongs to the caller."""
        self._writes.put(None)
        self._writer.join(timeout=30)
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=10)
        with self._lock:
            self._closed = True
            self._db.close()

    # -- internals ------------------------------------------------------------------------

    def _write(self) -> None:
        """Append what `remember` was given to `_accepted`, the calls of up to
        `_WRITE_LINGER_S` at a time."""
        while True:
            first = self._writes.get()
            if first is None:
                return
            batch, stopping = [first], False
            linger_until = time.monotonic() + _WRITE_LINGER_S
            while True:
                wait = linger_until - time.monotonic()
                try:
                    more = (self._writes.get(timeout=wait) if wait > 0
                            else self._writes.get_nowait())
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            written = self._append([NewRecord(value=accepted_value(where),
                                              key=accepted_key(write.source, event_id))
                                    for write in batch
                                    for event_id, where in write.accepted.items()])
            with self._lock:
                if self._closed:     # closing gave up waiting for Kafka
                    return
                # Our own records need not be read back: the cache is complete up to
                # them when nothing else was appended before them since the last copy.
                progress: dict[int, int] = {}
                for result in sorted(written, key=lambda r: (r.partition, r.offset)):
                    at = progress.get(result.partition, self._progress.get(result.partition, 0))
                    if result.offset == at:
                        progress[result.partition] = at + 1
                if progress:
                    self._store([], progress)
                self._settled = batch[-1].seq
                self._remembered.notify_all()
            if stopping:
                return

    def _written(self, seq: int) -> bool:
        # Called with the lock held.
        return self._settled >= seq

    def _append(self, records: list[NewRecord]) -> list[AppendResult]:
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                return self._log.append(ACCEPTED_TOPIC, records)
            except HandoffError as exc:
                if attempt + 1 == _WRITE_ATTEMPTS:
                    # Only this process's cache knows them now: its own lookups still
                    # find them; other API processes will not recognise their re-sends.
                    log.warning("could not record %d accepted events in %s: %s",
                                len(records), ACCEPTED_TOPIC, exc)
                else:
                    time.sleep(_ERROR_BACKOFF_S * 2 ** attempt)
        return []

    def _follow(self) -> None:
        """Copy what other processes append, a `_FOLLOW_S` after they append it."""
        failing = False
        while not self._stop.wait(_FOLLOW_S):
            started = time.monotonic()
            try:
                with self._lock:
                    submitted = self._submitted
                ends = self._log.end_offsets(ACCEPTED_TOPIC)
                with self._lock:
                    # The ends may include this process's own appends that the writer
                    # has not noted yet: wait for those rather than read them back.
                    self._remembered.wait_for(partial(self._written, submitted), _FOLLOW_S)
                    self._catch_up(dict(enumerate(ends)))
                    self._current_at = max(self._current_at, started)
                failing = False
            except HandoffError as exc:
                if self._stop.is_set():
                    return
                # Lookups catch up for themselves, where the error surfaces.
                if not failing:
                    log.warning("cannot follow %s; lookups will read it themselves: %s",
                                ACCEPTED_TOPIC, exc)
                failing = True

    def _execute(self, sql: str, params: Iterable[object] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise LogError(f"the idempotency cache failed: {exc}") from exc

    def _catch_up(self, ends: dict[int, int]) -> None:
        """Copy partitions up to the given ends. Called with the lock held."""
        for partition, end in sorted(ends.items()):
            start = self._progress.get(partition, 0)
            while start < end:
                records = self._log.read(ACCEPTED_TOPIC, partition, start, _READ_BATCH)
                if not records:
                    break
                rows = [(source, eid, a.topic, a.partition, a.offset) for source, eid, a in
                        filter(None, map(read_accepted, records))]
                start = records[-1].offset + 1
                self._store(rows, {partition: start})

    def _ends(self, partitions: set[int]) -> dict[int, int]:
        ends = self._log.end_offsets(ACCEPTED_TOPIC)
        return {partition: ends[partition] for partition in partitions}

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
        for partition, offset in progress.items():
            self._progress[partition] = max(self._progress.get(partition, 0), offset)
