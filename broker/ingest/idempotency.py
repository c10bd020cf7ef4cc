"""Remembers which (source agency, event_id) pairs were accepted, and where they went,
so a publisher that re-sends an event after a timeout gets the original answer back."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from broker.errors import LogError, LogUnavailableError, StorageFullError, UnknownTopicError
from broker.log.port import EventLog
from broker.topics import H_INGEST_EVENT_ID, H_INGEST_SOURCE

log = logging.getLogger("handoff.ingest")
_READ_BATCH = 5000
_LOOKUP_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Accepted:
    topic: str
    partition: int
    offset: int


AcceptedRow = tuple[str, str, Accepted]
"""(source agency, event_id, where it went)."""


class IdempotencyIndex(Protocol):
    recovers_from_log: bool
    """True when `catch_up` reads back from the ingress log whatever was appended but not
    remembered, so a failed `remember` loses nothing: the events are accepted."""

    def catch_up(self, topics: Iterable[str]) -> None:
        """Make sure what was appended to these ingress topics is in the index."""
        ...

    def lookup(self, source: str, event_ids: Iterable[str]) -> dict[str, Accepted]: ...

    def remember_all(self, accepted: Sequence[AcceptedRow]) -> None:
        """Record where the events of one group commit went, in one write."""
        ...

    def close(self) -> None: ...


class SqliteIdempotencyIndex:
    """The index in a SQLite file beside the embedded log: a cache of the ingress log.

    Every ingress record carries its publishing agency (`handoff.source`) and its id
    (`handoff.event_id`) in headers, so the log itself says which events were accepted.
    `progress` keeps, per ingress partition, the offset up to which the index holds every
    record. `remember_all` adds what a group commit appended (and moves the progress past
    it when it continues from there, the usual case); `catch_up` reads the log from the
    progress to the end and adds what is missing: what another process appended, and
    what was appended when writing the index failed (a full disk) or the process died
    between the append and the index. The group committer catches up the topics of a
    batch before it looks anything up, so a re-sent event is recognised whichever of
    those happened. Without `event_log` (tools reading the file) there is no catching up.
    """

    recovers_from_log = True

    def __init__(self, path: Path, event_log: EventLog | None = None) -> None:
        self._lock = threading.Lock()
        self._log = event_log
        self._path = path
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS accepted (source TEXT NOT NULL, event_id TEXT "
                "NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, "
                "offset INTEGER NOT NULL, PRIMARY KEY (source, event_id)) WITHOUT ROWID"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS progress (topic TEXT NOT NULL, partition "
                "INTEGER NOT NULL, next_offset INTEGER NOT NULL, PRIMARY KEY (topic, "
                "partition)) WITHOUT ROWID")
            # An index written before it kept progress is trusted up to the log's end as
            # it is now, as it always was; a new or emptied one is rebuilt from the log.
            self._trust_to_end = (
                self._db.execute("SELECT 1 FROM progress LIMIT 1").fetchone() is None
                and self._db.execute("SELECT 1 FROM accepted LIMIT 1").fetchone() is not None)
        except sqlite3.Error as exc:
            raise LogError(f"cannot open the idempotency index at {path}: {exc}") from exc

    def catch_up(self, topics: Iterable[str]) -> None:
        if self._log is None:
            return
        with self._lock:
            for topic in topics:
                self._catch_up_topic(topic)

    def lookup(self, source: str, event_ids: Iterable[str]) -> dict[str, Accepted]:
        ids = list(event_ids)
        found: dict[str, Accepted] = {}
        with self._lock:
            for start in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._execute(
                    f"SELECT event_id, topic, partition, offset FROM accepted "  # noqa: S608
                    f"WHERE source = ? AND event_id IN ({marks})",
                    (source, *chunk),
                )
                for event_id, topic, partition, offset in rows:
                    found[str(event_id)] = Accepted(str(topic), _int(partition), _int(offset))
        return found

    def remember(self, source: str, accepted: dict[str, Accepted]) -> None:
        self.remember_all([(source, event_id, where) for event_id, where in accepted.items()])

    def remember_all(self, accepted: Sequence[AcceptedRow]) -> None:
        if not accepted:
            return
        offsets: dict[tuple[str, int], list[int]] = defaultdict(list)
        for _, _, where in accepted:
            offsets[(where.topic, where.partition)].append(where.offset)
        # One append per topic per group commit gives each partition a contiguous run:
        # the progress moves past it when it starts where the progress stands.
        advances = [(max(o) + 1, topic, partition, min(o))
                    for (topic, partition), o in offsets.items()]
        with self._lock:
            self._write(
                [(s, e, a.topic, a.partition, a.offset) for s, e, a in accepted],
                "UPDATE progress SET next_offset = ? WHERE topic = ? AND partition = ? "
                "AND next_offset = ?", advances)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- internals (called with the lock held) --------------------------------------------

    def _catch_up_topic(self, topic: str) -> None:
        assert self._log is not None
        try:
            partitions = self._log.partitions(topic)
        except UnknownTopicError:
            return
        progress = {_int(p): _int(o) for p, o in self._execute(
            "SELECT partition, next_offset FROM progress WHERE topic = ?", (topic,))}
        # One query for every partition's end (a group commit catches up before each
        # lookup, so this runs once per commit).
        for partition, end in enumerate(self._log.end_offsets(topic)[:partitions]):
            start = progress.get(partition)
            if start is None:
                start = end if self._trust_to_end else 0
                self._set_progress([], topic, partition, start)
            while start < end:
                records = self._log.read(topic, partition, start, _READ_BATCH)
                rows = []
                for record in records:
                    source = record.header(H_INGEST_SOURCE)
                    event_id = record.header(H_INGEST_EVENT_ID)
                    if source is not None and event_id is not None:
                        rows.append((source.decode(), event_id.decode(), topic, partition,
                                     record.offset))
                # Nothing left to read before the end: records removed by retention.
                start = records[-1].offset + 1 if records else end
                if rows:
                    log.info("idempotency index: read back %d accepted event(s) of %s "
                             "partition %d from the log", len(rows), topic, partition)
                self._set_progress(rows, topic, partition, start)

    def _set_progress(self, rows: list[tuple[str, str, str, int, int]], topic: str,
                      partition: int, next_offset: int) -> None:
        self._write(rows, "INSERT INTO progress VALUES (?, ?, ?) ON CONFLICT (topic, "
                    "partition) DO UPDATE SET next_offset = max(next_offset, "
                    "excluded.next_offset)", [(topic, partition, next_offset)])

    def _write(self, rows: list[tuple[str, str, str, int, int]], progress_sql: str,
               progress: Sequence[tuple[object, ...]]) -> None:
        """Rows and progress in one transaction, rolled back whole if it fails."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO accepted VALUES (?, ?, ?, ?, ?)",
                                     rows)
                self._db.executemany(progress_sql, progress)
                self._db.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _translated(exc, self._path) from exc

    def _execute(self, sql: str, params: Iterable[object] = ()) -> list[tuple[object, ...]]:
        try:
            return self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise _translated(exc, self._path) from exc


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise LogError(f"the idempotency index holds {type(value).__name__} where a number "
                       "belongs: it is damaged (see docs/operations.md)")
    return value


def _translated(exc: sqlite3.Error, path: Path) -> LogError:
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    if code == 13:   # SQLITE_FULL
        return StorageFullError(f"the idempotency index {path} cannot grow: the disk is "
                                "full; free space, then retry")
    if code in (5, 6, 10, 14, 15):   # busy, locked, I/O error, cannot open, WAL protocol
        return LogUnavailableError(f"the idempotency index {path} is unavailable: {exc}")
    return LogError(f"the idempotency index {path} failed: {exc}")
