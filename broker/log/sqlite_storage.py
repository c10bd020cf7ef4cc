"""How the embedded log stores things in SQLite: the table layout, the header encoding,
opening connections, and turning sqlite3 errors into log errors.

Kept apart from `SqliteEventLog` so that class reads as log semantics, not plumbing.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Literal

from broker.errors import LogError, LogUnavailableError
from broker.log.port import Headers, TopicPartition

SyncMode = Literal["normal", "full"]

SCHEMA_VERSION = 1

# `partition_ends` holds the next offset of every partition, so offsets are never reused
# even after retention or compaction deleted the newest records of a partition.
# `records` keeps its rowid even though (topic, partition, offset) is the only access
# path: a WITHOUT ROWID table stores whole rows in the key b-tree, and with values of a
# kilobyte or more (Avro events, encrypted payloads) that spills into overflow pages and
# appends get several times slower than a rowid table plus its key index.
SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL,
    compacted INTEGER NOT NULL,
    retention_ms INTEGER
);
CREATE TABLE IF NOT EXISTS partition_ends (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers BLOB,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, offset)
);
CREATE TABLE IF NOT EXISTS group_offsets (
    group_name TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (group_name, topic, partition)
) WITHOUT ROWID;
"""

# Each header is: name length (u16), value length (u32), name (UTF-8), value.
_HEADER_PREFIX = struct.Struct(">HI")

# Primary sqlite result codes after which retrying later can succeed: busy, locked,
# I/O error, disk full, cannot open, WAL protocol error.
_RETRIABLE_CODES = frozenset({5, 6, 10, 13, 14, 15})


def encode_headers(headers: Headers) -> bytes | None:
    """Pack headers into one blob; None for no headers, which is the common case. (Each
    header's prefix and name, which depend on its name and its value's length only, are
    packed once and kept: a few names with values of a few lengths are most headers.)"""
    if not headers:
        return None
    parts: list[bytes] = []
    add = parts.append
    kept = _PREFIXES.get
    try:
        for name, value in headers:
            add(kept((name, len(value))) or _prefix(name, len(value)))
            add(value)
        return b"".join(parts)
    except (AttributeError, TypeError, ValueError, struct.error) as exc:
        # Checked by catching rather than up front: this runs for every appended record.
        raise LogError(
            "a record header must be a (str, bytes) pair with a name under 64 KiB"
        ) from exc


_PREFIXES: dict[tuple[str, int], bytes] = {}
"""(name, value length) -> the header's prefix and name, as `encode_headers` writes them."""
_PREFIXES_KEPT = 4096


def _prefix(name: str, size: int) -> bytes:
    encoded = name.encode()
    prefix = _HEADER_PREFIX.pack(len(encoded), size) + encoded
    if len(_PREFIXES) >= _PREFIXES_KEPT:
        _PREFIXES.clear()
    _PREFIXES[(name, size)] = prefix
    return prefix


_Layout = tuple[Callable[[bytes], tuple[object, ...]], tuple[int, ...], tuple[int, ...],
                tuple[bytes, ...], tuple[str, ...]]
"""The headers of one blob as a shape: a reader of the whole blob, and each header's
name length, value length, name and name's text. A blob of the same length that reader
finds the same lengths and names in holds its headers at the same places."""

_LAYOUTS: dict[int, _Layout] = {}
"""Blob length -> the first layout learnt at that length (kept: two layouts of one
length taking turns would otherwise be learnt anew for every blob)."""
_LAYOUTS_KEPT = 64
"""Layouts learnt at most, then no more: a blob no layout fits costs a check more."""


def decode_headers(blob: bytes | None) -> Headers:
    """Unpack a blob written by `encode_headers`. (Every record read with headers comes
    through here. A writer's records mostly repeat a few layouts, the same names with
    values of the same lengths: a blob of a layout learnt before is unpacked in one
    call and checked against it, any other is read header by header.)"""
    if not blob:
        return ()
    layout = _LAYOUTS.get(len(blob))
    if layout is not None:
        unpack, name_lengths, value_lengths, names, texts = layout
        parts = unpack(blob)
        if parts[2::4] == names and parts[1::4] == value_lengths and \
                parts[0::4] == name_lengths:
            # zip without `strict`: a keyword argument costs a quarter of a microsecond.
            return tuple(zip(texts, parts[3::4]))  # type: ignore[arg-type]  # noqa: B905
    headers = _decode_each(blob)
    if layout is None and len(_LAYOUTS) < _LAYOUTS_KEPT:
        _learn(blob, headers)
    return headers


def _learn(blob: bytes, headers: Headers) -> None:
    names = tuple(name.encode() for name, _ in headers)
    reader = struct.Struct(">" + "".join(
        f"HI{len(name)}s{len(value)}s" for name, (_, value) in zip(names, headers,
                                                                   strict=True)))
    if reader.size == len(blob):   # else the blob ends early: not a layout
        _LAYOUTS[len(blob)] = (reader.unpack, tuple(len(n) for n in names),
                               tuple(len(v) for _, v in headers), names,
                               tuple(name for name, _ in headers))


def _decode_each(blob: bytes, _unpack: Callable[[bytes, int], tuple[int, int]]
                 = _HEADER_PREFIX.unpack_from, _size: int = _HEADER_PREFIX.size) -> Headers:
    """`decode_headers`, one header after another (the prefix's reader and size bound
    once, each header sliced at positions computed once)."""
    headers: list[tuple[str, bytes]] = []
    position = 0
    end = len(blob)
    while position < end:
        name_length, value_length = _unpack(blob, position)
        start = position + _size
        name_end = start + name_length
        position = name_end + value_length
        headers.append((blob[start:name_end].decode(), blob[name_end:position]))
    return tuple(headers)


def translate_error(exc: sqlite3.Error, doing: str, path: Path) -> LogError:
    """A log error for a sqlite3 error, with a message that tells the operator what to
    check. sqlite messages name tables and columns, never stored values."""
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    if code in _RETRIABLE_CODES:
        return LogUnavailableError(
            f"event log {path} could not {doing}: {exc}. Check that the disk has free "
            "space, the data directory is mounted and writable, and no other process "
            "holds a long write transaction on the database; then retry."
        )
    return LogError(f"event log {path} could not {doing}: {exc}")


def connect(path: Path, *, sync: SyncMode | None, busy_timeout_s: float) -> sqlite3.Connection:
    """Open a connection in autocommit mode (transactions are explicit).

    `sync` None opens a read-only connection; otherwise the connection may write and
    commits with that `synchronous` level (the setting is per connection).
    """
    connection = sqlite3.connect(
        path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
    )
    if sync is None:
        connection.execute("PRAGMA query_only = ON")
    else:
        connection.execute(f"PRAGMA synchronous = {sync.upper()}")
    return connection


def prepare_database(connection: sqlite3.Connection, path: Path) -> None:
    """Switch the database to WAL and create the tables if they are missing."""
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise LogError(
            f"event log {path} cannot use write-ahead logging (journal mode is {mode}); "
            "put the data directory on a local file system"
        )
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise LogError(
            f"event log {path} was written by a newer Handoff (storage version {version}, "
            f"this one understands {SCHEMA_VERSION}); upgrade Handoff to open it"
        )
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise


class ReaderPool:
    """Read-only connections shared by the threads that read.

    A pool rather than one connection per thread: request threads come and go, and a
    connection tied to a dead thread would stay open until the log closes.
    """

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Lend a connection for the duration of the `with` block."""
        with self._lock:
            if self._closed:
                raise LogError(f"event log {self._path} is closed")
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = connect(self._path, sync=None, busy_timeout_s=self._busy_timeout_s)
        try:
            yield connection
        finally:
            with self._lock:
                keep = not self._closed
                if keep:
                    self._idle.append(connection)
            if not keep:
                connection.close()

    def close(self) -> None:
        """Close idle connections now and lent ones when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def topic_shape(partitions: int, compacted: bool) -> str:
    """How a topic is laid out, in words (for refusals)."""
    return f"{partitions} partition(s), {'compacted' if compacted else 'not compacted'}"


READ_RECORDS = (
    "SELECT offset, key, value, headers, timestamp_ms FROM records "
    "WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?"
)
HAS_RECORD_FROM = "SELECT 1 FROM records WHERE topic = ? AND partition = ? AND offset >= ? LIMIT 1"


def group_offset(db: sqlite3.Connection, group: str, tp: TopicPartition) -> int | None:
    """`group`'s committed offset for a partition, or None if it never committed."""
    row = db.execute("SELECT next_offset FROM group_offsets "
                     "WHERE group_name = ? AND topic = ? AND partition = ?",
                     (group, tp[0], tp[1])).fetchone()
    return None if row is None else int(row[0])


class WriterBusy(Exception):
    """Another writer holds the database, and the caller would rather not wait."""


class WriteStarter:
    """Starts write transactions on one connection (the log's writer). A transaction
    that would rather not wait needs the connection's busy timeout at 0; the timeout is
    set only when the caller switches between waiting and not waiting, not twice per
    transaction: the event loop's group commits never wait, one after the other."""

    def __init__(self, db: sqlite3.Connection, busy_timeout_s: float) -> None:
        self._db = db
        self._waiting_ms = int(busy_timeout_s * 1000)
        self._waits = True   # `connect` set the busy timeout

    def begin(self, wait: bool = True) -> None:
        """Start a write transaction. `wait` False: raise `WriterBusy` at once, with no
        transaction open, if another connection (another process) holds the write lock."""
        if wait != self._waits:
            self._db.execute(f"PRAGMA busy_timeout = {self._waiting_ms if wait else 0}")
            self._waits = wait
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not wait and exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY,
                                                            sqlite3.SQLITE_LOCKED):
                raise WriterBusy from exc
            raise


def roll_back(db: sqlite3.Connection) -> None:
    """Roll back an open transaction, if any, ignoring a failure to."""
    if db.in_transaction:
        with suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def advanced_partitions(db: sqlite3.Connection, positions: Mapping[TopicPartition, int]
                        ) -> list[TopicPartition]:
    """The partitions of `positions` whose end lies past the position: one query over
    `partition_ends` for all of them, so a reader of many partitions (a router owns
    every ingress partition) reads only those that advanced. Retention may have removed
    what lies past a position; the caller's read finds that out."""
    topics = sorted({topic for topic, _ in positions})
    if not topics:
        return []
    marks = ",".join("?" * len(topics))
    ends = {(topic, partition): next_offset for topic, partition, next_offset in db.execute(
        f"SELECT topic, partition, next_offset FROM partition_ends WHERE topic IN ({marks})",  # noqa: S608
        topics)}
    return [tp for tp, offset in positions.items() if ends.get(tp, 0) > offset]


def partition_end_offsets(db: sqlite3.Connection, topic: str, partitions: int) -> list[int]:
    """The next offset of each of `topic`'s partitions, in partition order, in one query."""
    ends = [0] * partitions
    for partition, next_offset in db.execute(
            "SELECT partition, next_offset FROM partition_ends WHERE topic = ?", (topic,)):
        if 0 <= partition < partitions:
            ends[partition] = int(next_offset)
    return ends


DROP_SUPERSEDED = """
DELETE FROM records
WHERE topic = :topic AND partition = :partition AND key IS NOT NULL
  AND offset NOT IN (
    SELECT MAX(offset) FROM records
    WHERE topic = :topic AND partition = :partition AND key IS NOT NULL
    GROUP BY key
  )
"""
"""Deletes the records of a compacted topic's partition superseded by a later one."""
