"""Durable person index in SQLite (stdlib sqlite3), for the embedded deployment.

Blocking keys are an indexed table, so finding the candidates of a record is a few index
range scans whatever the number of people. Every applied event is stored too, so the
index can hand its decisions to a Kafka topic or be rebuilt elsewhere. WAL mode; a batch
of events is one transaction, rolled back whole if any event in it does not fit.

A record by key, a person's records and a person's merge redirect are answered from
memory when asked again (`IndexReadCache`): each write through the instance drops what it
changed (a rolled-back one, everything), and a commit by any other connection to the file,
in this process or another, drops everything before the next read (`PRAGMA
data_version`, a few microseconds, against a query and the decoding of its rows). The
router holds its reads for a batch (`hold_reads`): one look when the batch begins, none per
read until it ends; it is the file's only writer while the broker runs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar, cast

from linkage.blocking import blocking_keys
from linkage.errors import LinkageError
from linkage.events import LinkageEvent, decode_event, encode_event
from linkage.identity import IDENTITY_FIELDS, NormalisedIdentity
from linkage.index import (
    Assignment,
    AssignmentCause,
    IndexedRecord,
    ReviewItem,
    ReviewStatus,
    apply_event,
)
from linkage.read_cache import IndexReadCache
from linkage.scoring import FieldEvidence

_V = TypeVar("_V")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    record_key TEXT PRIMARY KEY, identity TEXT NOT NULL, person_id TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_person ON records (person_id);
CREATE TABLE IF NOT EXISTS blocks (
    key TEXT NOT NULL, record_key TEXT NOT NULL, PRIMARY KEY (key, record_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS assignments (
    record_key TEXT NOT NULL, seq INTEGER NOT NULL, person_id TEXT NOT NULL,
    cause TEXT NOT NULL, PRIMARY KEY (record_key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS redirects (person_id TEXT PRIMARY KEY, into_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reviews (
    review_id TEXT PRIMARY KEY, record_key TEXT NOT NULL, candidate TEXT NOT NULL,
    weight REAL NOT NULL, evidence TEXT NOT NULL, reason TEXT NOT NULL,
    opened_seq INTEGER NOT NULL, status TEXT NOT NULL, resolved_by TEXT, resolved_seq INTEGER
);
CREATE INDEX IF NOT EXISTS reviews_open ON reviews (status, opened_seq);
"""


HOLD_SECONDS = 1.0
"""The longest `hold_reads` spares the per-read look, should its batch end without
`release_reads` (a batch that failed half way)."""


class IndexUnavailableError(LinkageError):
    """The index database could not be read or written; retrying later may succeed."""

    retriable = True


def _identity_out(identity: NormalisedIdentity) -> str:
    return json.dumps([getattr(identity, f) for f in IDENTITY_FIELDS], separators=(",", ":"))


@lru_cache(maxsize=16_384)
def _identity_in(text: str) -> NormalisedIdentity:
    """The identity a row stores. The most recent 16,384 are kept decoded (a few
    megabytes): the same candidates come back for every record of a block, and an
    identity is an immutable value."""
    return NormalisedIdentity(*json.loads(text))


class SqlitePersonIndex:
    """A `PersonIndex` in one SQLite file. Safe to share between threads.

    `cache_entries` bounds each map of the read cache (records by key, records by
    person, redirects by person): about 1.4 kB per person with all three kept, so some
    25 MB at the default when full."""

    def __init__(self, path: Path | str,
                 synchronous: Literal["FULL", "NORMAL", "OFF"] = "FULL",
                 cache_entries: int = 16_384) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT MAX(seq) FROM events").fetchone()
            self._data_version = self._db.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise IndexUnavailableError(f"person index {self.path.name} cannot be opened: "
                                        f"{exc}") from exc
        self._last_seq = int(row[0] or 0)
        self._cache = IndexReadCache(cache_entries)
        self._held_until = 0.0

    # -- port -----------------------------------------------------------------------------

    def apply(self, events: Sequence[LinkageEvent]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._look_for_other_writers()
                last = self._last_seq
                for event in events:
                    apply_event(self, last, event)
                    last = event.seq
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise IndexUnavailableError(f"person index write failed: {exc}") from exc
            except BaseException:
                self._rollback()
                raise
            self._last_seq = last

    def _rollback(self) -> None:
        # What the batch read or dropped inside the transaction no longer holds.
        self._cache.clear()
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def hold_reads(self) -> None:
        with self._lock:
            self._look_for_other_writers()
            self._held_until = time.monotonic() + HOLD_SECONDS

    def release_reads(self) -> None:
        self._held_until = 0.0

    def _fresh(self) -> None:
        """Drop the read cache if another connection committed since the last look (under
        the lock), unless reads are held. Inside this instance's write transaction no one
        else can commit: `apply` looks once when it has the file's write lock."""
        if not self._db.in_transaction and (
                not self._held_until or time.monotonic() >= self._held_until):
            self._look_for_other_writers()

    def _look_for_other_writers(self) -> None:
        """Another connection's commit drops the read cache and moves `last_seq` on."""
        try:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._cache.clear()
                row = self._db.execute("SELECT MAX(seq) FROM events").fetchone()
                self._last_seq = int(row[0] or 0)
                self._data_version = version
        except sqlite3.Error as exc:
            raise IndexUnavailableError(f"person index read failed: {exc}") from exc

    def last_seq(self) -> int:
        return self._last_seq

    def events(self, after_seq: int = 0) -> Iterator[LinkageEvent]:
        cursor = self._read("SELECT body FROM events WHERE seq > ? ORDER BY seq", (after_seq,))
        return (decode_event(body) for (body,) in cursor)

    def record(self, record_key: str) -> IndexedRecord | None:
        return self.get_record(record_key)

    def candidates(self, blocking_keys: Sequence[str], limit: int) -> tuple[IndexedRecord, ...]:
        if not blocking_keys:
            return ()
        marks = ",".join("?" * len(blocking_keys))
        sql = ("SELECT record_key, identity, person_id FROM records WHERE record_key IN "  # noqa: S608
               f"(SELECT record_key FROM blocks WHERE key IN ({marks}) LIMIT ?)")
        rows = self._read(
            sql,
            (*blocking_keys, limit)).fetchall()
        return tuple(IndexedRecord(k, _identity_in(i), p) for k, i, p in rows)

    def records_of(self, person_id: str) -> tuple[IndexedRecord, ...]:
        def load() -> tuple[IndexedRecord, ...]:
            rows = self._read("SELECT record_key, identity, person_id FROM records "
                              "WHERE person_id = ? ORDER BY record_key",
                              (person_id,)).fetchall()
            return tuple(IndexedRecord(k, _identity_in(i), p) for k, i, p in rows)
        return self._through(self._cache.records_of, self._cache.keep_records_of,
                             person_id, load)

    def merged_into(self, person_id: str) -> str | None:
        def load() -> str | None:
            row = self._read("SELECT into_id FROM redirects WHERE person_id = ?",
                             (person_id,)).fetchone()
            return str(row[0]) if row else None
        return self._through(self._cache.redirect, self._cache.keep_redirect, person_id, load)

    def assignments(self, record_key: str) -> tuple[Assignment, ...]:
        rows = self._read("SELECT seq, person_id, cause FROM assignments WHERE record_key = ? "
                          "ORDER BY seq", (record_key,)).fetchall()
        return tuple(Assignment(s, p, cast(AssignmentCause, c)) for s, p, c in rows)

    def review(self, review_id: str) -> ReviewItem | None:
        return self.get_review(review_id)

    def open_reviews(self, limit: int = 100) -> tuple[ReviewItem, ...]:
        rows = self._read(_SELECT_REVIEWS + " WHERE status = 'open' ORDER BY opened_seq "
                          "LIMIT ?", (limit,)).fetchall()
        return tuple(_review_in(row) for row in rows)

    def iter_records(self) -> Iterator[IndexedRecord]:
        cursor = self._read("SELECT record_key, identity, person_id FROM records", ())
        return (IndexedRecord(k, _identity_in(i), p) for k, i, p in cursor)

    def keys_with_id(self, id_system: str, value: str) -> tuple[str, ...]:
        """Record keys, of any agency, holding this id in this numbering scheme. A scan
        of the records (for tools: the accounting asked by an id without its agency)."""
        def escaped(text: str) -> str:
            return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._read("SELECT record_key FROM records WHERE record_key LIKE ? ESCAPE '\\'",
                          (f"%|{escaped(id_system)}|{escaped(value)}",)).fetchall()
        return tuple(k for (k,) in rows if k.split("|", 2)[1:] == [id_system, value])

    def counts(self) -> tuple[int, int]:
        records = self._read("SELECT COUNT(*) FROM records", ()).fetchone()[0]
        persons = self._read("SELECT COUNT(DISTINCT person_id) FROM records", ()).fetchone()[0]
        return int(records), int(persons)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _through(self, cached: Callable[[str], _V], keep: Callable[[str, _V], None],
                 key: str, load: Callable[[], _V]) -> _V:
        """A cached answer (after a look for other writers), else `load`'s, kept."""
        with self._lock:
            self._fresh()
            try:
                return cached(key)
            except KeyError:
                pass
            value = load()
            keep(key, value)
            return value

    def _read(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise IndexUnavailableError(f"person index read failed: {exc}") from exc

    # -- store primitives for apply_event (inside apply's transaction) ----------------------

    def get_record(self, record_key: str) -> IndexedRecord | None:
        def load() -> IndexedRecord | None:
            row = self._read("SELECT identity, person_id FROM records WHERE record_key = ?",
                             (record_key,)).fetchone()
            return IndexedRecord(record_key, _identity_in(row[0]), row[1]) if row else None
        return self._through(self._cache.record, self._cache.keep_record, record_key, load)

    def put_identity(self, record_key: str, identity: NormalisedIdentity) -> None:
        old = self.get_record(record_key)
        if old is not None:
            self._db.executemany("DELETE FROM blocks WHERE key = ? AND record_key = ?",
                                 [(k, record_key) for k in blocking_keys(old.identity)])
        self._db.execute(
            "INSERT INTO records (record_key, identity) VALUES (?, ?) ON CONFLICT (record_key) "
            "DO UPDATE SET identity = excluded.identity", (record_key, _identity_out(identity)))
        self._db.executemany("INSERT OR IGNORE INTO blocks (key, record_key) VALUES (?, ?)",
                             [(k, record_key) for k in blocking_keys(identity)])
        self._cache.record_changed(record_key, old.person_id if old is not None else None)

    def assign(self, record_key: str, person_id: str, seq: int,
               cause: AssignmentCause) -> None:
        old = self.get_record(record_key)
        self._db.execute("UPDATE records SET person_id = ? WHERE record_key = ?",
                         (person_id, record_key))
        self._db.execute("INSERT INTO assignments (record_key, seq, person_id, cause) "
                         "VALUES (?, ?, ?, ?)", (record_key, seq, person_id, cause))
        self._cache.record_changed(record_key, old.person_id if old is not None else None,
                                   person_id)

    def set_redirect(self, person_id: str, into: str | None) -> None:
        self._cache.redirect_changed(person_id)
        if into is None:
            self._db.execute("DELETE FROM redirects WHERE person_id = ?", (person_id,))
        else:
            self._db.execute("INSERT OR REPLACE INTO redirects (person_id, into_id) "
                             "VALUES (?, ?)", (person_id, into))

    def get_review(self, review_id: str) -> ReviewItem | None:
        row = self._read(_SELECT_REVIEWS + " WHERE review_id = ?", (review_id,)).fetchone()
        return _review_in(row) if row else None

    def put_review(self, item: ReviewItem) -> None:
        evidence = json.dumps([[e.field, e.level, e.weight] for e in item.evidence])
        self._db.execute(
            _INSERT_REVIEW,
            (item.review_id, item.record_key, item.candidate_person_id, item.match_weight,
             evidence, item.reason, item.opened_seq, item.status, item.resolved_by,
             item.resolved_seq))

    def append_event(self, event: LinkageEvent) -> None:
        self._db.execute("INSERT INTO events (seq, body) VALUES (?, ?)",
                         (event.seq, encode_event(event)))


_REVIEW_COLUMNS = ("review_id, record_key, candidate, weight, evidence, reason, opened_seq, "
                   "status, resolved_by, resolved_seq")
_SELECT_REVIEWS = f"SELECT {_REVIEW_COLUMNS} FROM reviews"  # noqa: S608 - fixed names
_INSERT_REVIEW = (f"INSERT OR REPLACE INTO reviews ({_REVIEW_COLUMNS}) "  # noqa: S608 - fixed
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _review_in(row: tuple[object, ...]) -> ReviewItem:
    (review_id, record_key, candidate, weight, evidence, reason, opened_seq, status,
     resolved_by, resolved_seq) = row
    return ReviewItem(
        str(review_id), str(record_key), str(candidate), float(cast(float, weight)),
        tuple(FieldEvidence(f, lv, w) for f, lv, w in json.loads(str(evidence))),
        str(reason), int(cast(int, opened_seq)), cast(ReviewStatus, status),
        cast("str | None", resolved_by), cast("int | None", resolved_seq))
