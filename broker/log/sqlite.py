"""The embedded event log: one SQLite database file in WAL mode."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from broker.errors import ConfigError, LogError, TopicMismatchError, UnknownTopicError
from broker.log.embedded_group import EmbeddedGroupCoordinator, QuietTopics
from broker.log.partitioner import Placer
from broker.log.port import AppendResult, Consumer, LogRecord, NewRecord, TopicPartition, TopicSpec
from broker.log.sqlite_append import insert_planned, offset_rows, plan_appends, save_offsets
from broker.log.sqlite_append_signal import AppendSignal, advanced_unless_quiet
from broker.log.sqlite_storage import (
    DROP_SUPERSEDED,
    HAS_RECORD_FROM,
    READ_RECORDS,
    ReaderPool,
    SyncMode,
    WriterBusy,
    WriteStarter,
    connect,
    decode_headers,
    group_offset,
    partition_end_offsets,
    prepare_database,
    roll_back,
    topic_shape,
    translate_error,
)
from broker.log.sqlite_wal import WalCheckpointer

_BUSY_TIMEOUT_S = 5.0
_EXTERNAL_POLL_S = 0.05
"""How often `wait` looks for another process's appends without a doorbell, by default."""
_BACKSTOP_CHECKPOINT_PAGES = 4000
"""A commit folds the write-ahead log back itself past this many pages (SQLite: 1,000)."""
_SAFETY_POLL_S = 0.5
"""With a doorbell, how often `wait` still looks (for rings lost, foreign writers)."""


class SqliteEventLog:
    """The embedded `EventLog`: every topic in one SQLite database file, in WAL mode.

    Durability depends on `sync`:

    - ``"normal"`` (default): a commit writes the transaction to the write-ahead log
      without waiting for the disk. A record whose `append` returned survives `kill -9`
      of this process (the operating system holds the write), but a power loss or kernel
      crash can lose the last few commits. The database itself is never corrupted.
    - ``"full"``: every commit also waits for the write-ahead log to reach the disk
      (fsync), so appended records survive power loss too, at the cost of one disk flush
      per `append` batch.

    Thread safety: one writer connection behind a lock (SQLite admits one writer at a
    time anyway); reads use pooled read-only connections and run alongside writes.
    `wait` is woken at once by appends through this object or, through a doorbell, by
    another process on the same file (`broker.log.sqlite_append_signal`; `doorbell`
    False polls every `cross_process_poll_s` instead, 50 ms unless given).

    Consumer groups are coordinated inside this object: members created by one
    `SqliteEventLog` split partitions between them; committed offsets are stored in the
    database and so outlive the process. Members in different processes do not see each
    other; run consumers of one group in one process, or use the Kafka backend.
    """

    def __init__(self, path: Path, sync: SyncMode = "normal",
                 cross_process_poll_s: float = _EXTERNAL_POLL_S, doorbell: bool = True,
                 safety_poll_s: float = _SAFETY_POLL_S) -> None:
        if sync not in ("normal", "full"):
            raise ConfigError(f"event log sync mode must be 'normal' or 'full', not {sync!r}")
        self._path = Path(path)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LogError(
                f"cannot create the data directory {self._path.parent}: {exc.strerror}; "
                "check the path and its permissions"
            ) from exc
        try:
            writer = connect(self._path, sync=sync, busy_timeout_s=_BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise translate_error(exc, "open its database", self._path) from exc
        try:
            prepare_database(writer, self._path)
            # Checkpoints run in a thread of their own; the writer's only as a backstop.
            writer.execute(f"PRAGMA wal_autocheckpoint = {_BACKSTOP_CHECKPOINT_PAGES}")
            self._appended = AppendSignal(self._path, cross_process_poll_s, _BUSY_TIMEOUT_S,
                                          doorbell, safety_poll_s)
        except sqlite3.Error as exc:
            writer.close()
            raise translate_error(exc, "prepare its database", self._path) from exc
        except LogError:
            writer.close()
            raise
        self._writer: sqlite3.Connection | None = writer
        self._begin_write = WriteStarter(writer, _BUSY_TIMEOUT_S).begin
        self._checkpoints = WalCheckpointer(self._path, busy_timeout_s=_BUSY_TIMEOUT_S)
        self._write_lock = threading.Lock()
        self._readers = ReaderPool(self._path, _BUSY_TIMEOUT_S)
        self._specs: dict[str, TopicSpec] = {}
        self._placer = Placer()
        self._groups = EmbeddedGroupCoordinator(self, self)
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteEventLog({str(self._path)!r})"

    # -- topics ---------------------------------------------------------------------------

    def ensure_topic(self, spec: TopicSpec) -> None:
        """Create the topic if missing; raise `TopicMismatchError` when it exists with
        another partition count or cleanup policy. Retention is a setting rather than a
        shape: an existing topic takes the retention of `spec`."""
        if not spec.name:
            raise LogError("a topic needs a name")
        if spec.partitions < 1:
            raise LogError(f"topic {spec.name!r} needs at least one partition")
        with self._transaction("create a topic") as db:
            row = db.execute(
                "SELECT partitions, compacted FROM topics WHERE name = ?", (spec.name,)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO topics (name, partitions, compacted, retention_ms) "
                    "VALUES (?, ?, ?, ?)",
                    (spec.name, spec.partitions, int(spec.compacted), spec.retention_ms),
                )
                db.executemany(
                    "INSERT INTO partition_ends (topic, partition, next_offset) VALUES (?, ?, 0)",
                    [(spec.name, partition) for partition in range(spec.partitions)],
                )
            elif (row[0], bool(row[1])) != (spec.partitions, spec.compacted):
                raise TopicMismatchError(
                    f"topic {spec.name!r} exists with {topic_shape(row[0], bool(row[1]))}, but "
                    f"{topic_shape(spec.partitions, spec.compacted)} is required; a topic cannot "
                    "be reshaped in place, so create a new topic and move its readers"
                )
            else:
                db.execute(
                    "UPDATE topics SET retention_ms = ? WHERE name = ?",
                    (spec.retention_ms, spec.name),
                )
        self._specs[spec.name] = spec

    def topics(self) -> list[str]:
        """Names of all topics, sorted."""
        with self._reading("list topics") as db:
            return [name for (name,) in db.execute("SELECT name FROM topics ORDER BY name")]

    def partitions(self, topic: str) -> int:
        """Number of partitions; raise `UnknownTopicError` for a missing topic."""
        return self._spec(topic).partitions

    # -- records --------------------------------------------------------------------------

    def append(self, topic: str, records: Sequence[NewRecord]) -> list[AppendResult]:
        """Append `records` in one transaction; return when it is committed."""
        return self.append_all(((topic, records),))[0]

    def append_all(self, batches: Sequence[tuple[str, Sequence[NewRecord]]]
                   ) -> list[list[AppendResult]]:
        """Append to several topics in one transaction; return when it is committed."""
        return self._append(batches, (), "append records")

    def append_all_and_commit(self, batches: Sequence[tuple[str, Sequence[NewRecord]]],
                              consumer: Consumer, offsets: Mapping[TopicPartition, int]
                              ) -> list[list[AppendResult]]:
        """`AppendCommitting`: `append_all` and `consumer.commit(offsets)` in one
        transaction, all or none."""
        rows = offset_rows(self._groups.group_of(consumer), offsets, self._check_partition)
        return self._append(batches, rows, "append records and commit consumer offsets")

    def append_unless_busy(self, topic: str, records: Sequence[NewRecord]
                           ) -> list[AppendResult] | None:
        """`AppendingUnlessBusy`: `append`, or None with nothing written when another
        writer (a thread of this process, or another process) holds the log."""
        try:
            return self._append(((topic, records),), (), "append records", wait=False)[0]
        except WriterBusy:
            return None

    def _append(self, batches: Sequence[tuple[str, Sequence[NewRecord]]],
                offsets: Sequence[tuple[str, str, int, int]], doing: str, wait: bool = True
                ) -> list[list[AppendResult]]:
        planned = plan_appends(self._placer, batches, self.partitions,
                               time.time_ns() // 1_000_000)
        advanced = tuple(batch.topic for batch in planned if batch.placed)
        if not advanced and not offsets:
            return [[] for _ in planned]
        with self._transaction(doing, wait) as db:
            results = insert_planned(db, planned)
            if offsets:
                save_offsets(db, offsets)
        if advanced:
            self._appended.appended(advanced)
        return results

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 500
    ) -> list[LogRecord]:
        """Records of one partition from `offset` on, without blocking. An offset that
        compaction or retention removed reads from the next surviving record."""
        self._check_partition(topic, partition)
        if offset < 0 or max_records < 1:
            raise LogError("read needs an offset of at least 0 and max_records of at least 1")
        with self._reading("read records") as db:
            rows = db.execute(READ_RECORDS, (topic, partition, offset, max_records)).fetchall()
        return [
            LogRecord(topic, partition, row[0], row[1], row[2], decode_headers(row[3]), row[4])
            for row in rows
        ]

    def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next appended record of this partition will get."""
        self._check_partition(topic, partition)
        with self._reading("read an end offset") as db:
            row = db.execute(
                "SELECT next_offset FROM partition_ends WHERE topic = ? AND partition = ?",
                (topic, partition),
            ).fetchone()
        return int(row[0]) if row else 0

    def end_offsets(self, topic: str) -> list[int]:
        """`end_offset` of every partition of `topic`, in partition order, in one query."""
        with self._reading("read end offsets") as db:
            return partition_end_offsets(db, topic, self.partitions(topic))

    def wait(self, positions: Mapping[TopicPartition, int], timeout: float,
             quiet: QuietTopics | None = None) -> bool:
        """Block until some partition has a record at or past its position (True) or
        `timeout` seconds pass (False). `quiet`: as for `advanced`."""
        for topic, partition in positions:
            self._check_partition(topic, partition)
        deadline = time.monotonic() + max(timeout, 0.0)
        topics = {topic for topic, _ in positions}
        while True:
            generation = self._appended.generation()
            # Checked after taking the generation, so an append landing in between
            # changes the generation and is not slept through.
            if self._has_records(positions, quiet):
                return True
            if not self._appended.wait_for_change(
                    generation, deadline - time.monotonic(), topics):
                return False

    def watch_appends(self, topic: str, wake: Callable[[], None]) -> Callable[[], None]:
        """`AppendWatching`: `wake()` after appends to `topic` by any process."""
        self._check_partition(topic, 0)
        return self._appended.watch(topic, wake)

    # -- consumer groups ------------------------------------------------------------------

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """Join consumer group `group` reading `topics` (see the class docstring)."""
        for topic in topics:
            self._spec(topic)
        self._check_open()
        return self._groups.join(group, list(topics))

    def save_group_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Store `group`'s committed offsets in one transaction (used by its consumers)."""
        rows = offset_rows(group, offsets, self._check_partition)
        with self._transaction("commit consumer offsets") as db:
            save_offsets(db, rows)

    def load_group_offset(self, group: str, tp: TopicPartition) -> int | None:
        """`group`'s committed offset for a partition, or None if it never committed."""
        with self._reading("read a committed offset") as db:
            return group_offset(db, group, tp)

    # -- housekeeping ---------------------------------------------------------------------

    def compact(self, topic: str) -> int:
        """Delete records of a compacted topic superseded by a later record with the same
        key; survivors keep their offsets. Returns the number of records deleted."""
        spec = self._spec(topic)
        if not spec.compacted:
            raise LogError(f"topic {topic!r} is not compacted; only compacted topics compact")
        deleted = 0
        for partition in range(spec.partitions):
            # One transaction per partition keeps appends waiting for a short time only.
            with self._transaction("compact a topic") as db:
                deleted += db.execute(
                    DROP_SUPERSEDED, {"topic": topic, "partition": partition}
                ).rowcount
        return deleted

    def enforce_retention(self, now_ms: int) -> int:
        """Delete records older than their topic's retention at `now_ms`. Offsets are
        not reused. Returns the number of records deleted."""
        with self._reading("read retention settings") as db:
            limits = db.execute(
                "SELECT name, retention_ms FROM topics WHERE retention_ms IS NOT NULL"
            ).fetchall()
        deleted = 0
        for topic, retention_ms in limits:
            with self._transaction("enforce retention") as db:
                deleted += db.execute(
                    "DELETE FROM records WHERE topic = ? AND timestamp_ms < ?",
                    (topic, now_ms - retention_ms),
                ).rowcount
        return deleted

    def close(self) -> None:
        """Close the log; later calls raise `LogError`. Closing twice does nothing."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            writer, self._writer = self._writer, None
        self._groups.close_all()
        self._checkpoints.close()
        self._readers.close()
        if writer is not None:
            writer.close()
        self._appended.close()  # wakes waiters, who then find the log closed

    # -- internals ------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, doing: str, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction; `wait` False raises `WriterBusy` rather than wait."""
        if not self._write_lock.acquire(blocking=wait):
            raise WriterBusy
        try:
            db = self._writer
            if db is None:
                raise LogError(f"event log {self._path} is closed")
            try:
                self._begin_write(wait)
                yield db
                db.execute("COMMIT")
                self._checkpoints.wrote()
            except sqlite3.Error as exc:
                roll_back(db)
                raise translate_error(exc, doing, self._path) from exc
            except BaseException:
                roll_back(db)
                raise
        finally:
            self._write_lock.release()

    @contextmanager
    def _reading(self, doing: str) -> Iterator[sqlite3.Connection]:
        try:
            with self._readers.connection() as db:
                yield db
        except sqlite3.Error as exc:
            raise translate_error(exc, doing, self._path) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise LogError(f"event log {self._path} is closed")

    def _spec(self, topic: str) -> TopicSpec:
        self._check_open()
        spec = self._specs.get(topic)
        if spec is not None:
            return spec
        # Another process may have created it since this one opened the file.
        with self._reading("look up a topic") as db:
            row = db.execute(
                "SELECT partitions, compacted, retention_ms FROM topics WHERE name = ?",
                (topic,),
            ).fetchone()
        if row is None:
            raise UnknownTopicError(f"topic {topic!r} does not exist")
        spec = TopicSpec(topic, int(row[0]), bool(row[1]), row[2])
        self._specs[topic] = spec
        return spec

    def _check_partition(self, topic: str, partition: int) -> None:
        partitions = self._spec(topic).partitions
        if not 0 <= partition < partitions:
            raise UnknownTopicError(
                f"topic {topic!r} has partitions 0 to {partitions - 1}, not {partition}"
            )

    def _has_records(self, positions: Mapping[TopicPartition, int],
                     quiet: QuietTopics | None) -> bool:
        if quiet is not None and quiet.since.keys() - self._appended.unannounced(quiet.since):
            return True  # appends to a topic found quiet were announced: the caller reads
        with self._reading("check for new records") as db:
            return any(db.execute(HAS_RECORD_FROM, (tp[0], tp[1], positions[tp])).fetchone()
                       for tp in advanced_unless_quiet(db, self._appended, positions, quiet))

    def advanced(self, positions: Mapping[TopicPartition, int],
                 quiet: QuietTopics | None = None) -> list[TopicPartition]:
        """The partitions of `positions` whose end lies past the position (one query).
        `quiet`: the caller's memory of topics with nothing new, left out unless
        an append to them was announced since (`quiet_topics_left_out`); updated."""
        with self._reading("check for new records") as db:
            return advanced_unless_quiet(db, self._appended, positions, quiet)

