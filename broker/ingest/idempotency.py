"""Remembers which (source agency, event_id) pairs were accepted, and where they went,
so a publisher that re-sends an event after a timeout gets the original answer back."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
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
CACHE_KIB = 32 * 1024
"""The index's page cache (SQLite's default is 2 MiB): lookups and writes land on
random pages of the table, which outgrows the default within ~25,000 events."""


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
        """Record where the events of one group commit went. An index that recovers
        from the log may hold them in memory (its lookups see them) until `flush`."""
        ...

    def pending_since(self) -> float | None:
        """When (`time.monotonic()`) the oldest of what `remember_all` holds unwritten
        was given; None when nothing waits for `flush`."""
        ...

    def flush(self) -> None:
        """Write what `remember_all` holds in memory, in one write."""
        ...

    def close(self) -> None:
        """Flush, then close."""
        ...


class SqliteIdempotencyIndex:
    """The index in a SQLite file beside the embedded log: a cache of the ingress log.

    Every ingress record carries its publishing agency (`handoff.source`) and its id
    (`handoff.event_id`) in headers, so the log itself says which events were accepted.
    `progress` keeps, per ingress partition, the offset up to which the file holds every
    record. `remember_all` keeps what a group commit appended in memory, where lookups see
    it at once; `flush` writes it, with the progress moved past it when it continues from
    there (the usual case), in one transaction for many group commits and off the path of
    a publish's answer. Until then the progress in the file stays behind it, so a process
    that dies first loses nothing: `catch_up` reads the log from the progress to the end
    and adds what is missing, as it does for what another process appended and what was
    appended when writing the index failed (a full disk: a failed write drops what was
    held, which is then read back). The group committer catches up the topics of a batch
    before it looks anything up, so a re-sent event is recognised whichever of those
    happened. Without `event_log` (tools reading the file) there is no catching up.
    """

    recovers_from_log = True

    def __init__(self, path: Path, event_log: EventLog | None = None) -> None:
        self._lock = threading.Lock()
        self._log = event_log
        self._path = path
        self._held: dict[tuple[str, str], Accepted] = {}
        """Remembered, not yet written: (source, event_id) -> where it went."""
        self._held_advances: list[tuple[int, str, int, int]] = []
        """The progress moves the held rows make, in order: (to, topic, partition, from)."""
        self._held_since: float | None = None
        self._progress: dict[str, dict[int, int]] = {}
        """Per topic caught up by this process, per partition: the offset up to which the
        file and what is held hold every record."""
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
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
        found: dict[str, Accepted] = {}
        ids: list[str] = []
        with self._lock:
            for event_id in event_ids:
                held = self._held.get((source, event_id))
                if held is None:
                    ids.append(event_id)
                else:
                    found[event_id] = held
            for start in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._execute(
                    f"SELECT event_id, topic, partition, offset FROM accepted "  # noqa: S608
                    f"WHERE source = ? AND event_id IN ({marks})",
                    (source, *chunk),
                )
                for found_id, topic, partition, offset in rows:
                    found[str(found_id)] = Accepted(str(topic), _int(partition), _int(offset))
        return found

    def remember(self, source: str, accepted: dict[str, Accepted]) -> None:
        self.remember_all([(source, event_id, where) for event_id, where in accepted.items()])

    def remember_all(self, accepted: Sequence[AcceptedRow]) -> None:
        if not accepted:
            return
        offsets: dict[tuple[str, int], list[int]] = defaultdict(list)
        for _, _, where in accepted:
            offsets[(where.topic, where.partition)].append(where.offset)
        with self._lock:
            for source, event_id, where in accepted:
                self._held.setdefault((source, event_id), where)
            # One append per topic per group commit gives each partition a contiguous run:
            # the progress moves past it when it starts where the progress stands.
            for (topic, partition), run in offsets.items():
                first, after = min(run), max(run) + 1
                self._held_advances.append((after, topic, partition, first))
                known = self._progress.get(topic)
                if known is not None and known.get(partition) == first:
                    known[partition] = after
            if self._held_since is None:
                self._held_since = time.monotonic()

    def pending_since(self) -> float | None:
        return self._held_since

    def flush(self) -> None:
        with self._lock:
            if self._held_since is not None:
                self._write([], [])

    def close(self) -> None:
        with self._lock:
            try:
                if self._held_since is not None:
                    self._write([], [])
            except LogError as exc:   # read back from the log by the next process
                log.warning("closing the idempotency index without writing %d accepted "
                            "event(s) (%s)", len(self._held), type(exc).__name__)
            self._db.close()

    # -- internals (called with the lock held) --------------------------------------------

    def _catch_up_topic(self, topic: str) -> None:
        assert self._log is not None
        try:
            partitions = self._log.partitions(topic)
        except UnknownTopicError:
            return
        known = self._progress.get(topic)
        if known is None:
            known = {_int(p): _int(o) for p, o in self._execute(
                "SELECT partition, next_offset FROM progress WHERE topic = ?", (topic,))}
            self._progress[topic] = known
        # One query for every partition's end (a group commit catches up before each
        # lookup, so this runs once per commit).
        for partition, end in enumerate(self._log.end_offsets(topic)[:partitions]):
            start = known.get(partition)
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
        """Write `rows` read back and the progress past them (with what is held)."""
        self._write(rows, [(topic, partition, next_offset)])
        known = self._progress.get(topic)
        if known is not None:
            known[partition] = max(known.get(partition, next_offset), next_offset)

    def _write(self, rows: list[tuple[str, str, str, int, int]],
               progress: Sequence[tuple[str, int, int]]) -> None:
        """What is held, then `rows` and `progress`, in one transaction, rolled back whole
        if it fails; then what was held and what this process knew of the progress are
        dropped (the next `catch_up` reads them back from the file and the log)."""
        held = [(s, e, a.topic, a.partition, a.offset) for (s, e), a in self._held.items()]
        written = False
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO accepted VALUES (?, ?, ?, ?, ?)",
                                     held + rows)
                self._db.executemany(
                    "UPDATE progress SET next_offset = ? WHERE topic = ? AND partition = ? "
                    "AND next_offset = ?", self._held_advances)
                self._db.executemany(
                    "INSERT INTO progress VALUES (?, ?, ?) ON CONFLICT (topic, partition) "
                    "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                    progress)
                self._db.execute("COMMIT")
                written = True
            except BaseException:
                with suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _translated(exc, self._path) from exc
        finally:
            if not written:
                self._progress.clear()
            self._held.clear()
            self._held_advances.clear()
            self._held_since = None

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
