"""The referral ledger's store in a SQLite file: entries, timers by due time, enrollments
waiting for their referral, and the log positions they reflect.

One `write` is one transaction, so after a `kill -9` the file holds either all of a batch
(entries, timers and positions) or none of it, and the ledger resumes from positions that
match its entries. On the Kafka backend this file is a cache of the topics: delete it and
the ledger rebuilds it by reading them from the start.

Timers sit in a table indexed by (due_at, key, step, action); a tick reads the due rows
in index order and stops at its limit, so its cost grows with what is due, not with the
number of open referrals.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from policy.referral_terms import STEPS
from referrals.codec import (
    enrollment_from_json,
    enrollment_to_json,
    entry_from_json,
    entry_to_json,
)
from referrals.entry import ReferralEntry
from referrals.errors import LedgerStoreError
from referrals.events import EnrollmentReported, ReferralKey
from referrals.store import LedgerWrite
from referrals.timers import Action, Timer

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS referral_entries (
    referrer TEXT NOT NULL, referral_id TEXT NOT NULL, receiver TEXT, body TEXT NOT NULL,
    PRIMARY KEY (referrer, referral_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS referral_entries_by_receiver
    ON referral_entries (receiver, referral_id);
CREATE TABLE IF NOT EXISTS referral_timers (
    referrer TEXT NOT NULL, referral_id TEXT NOT NULL, step TEXT NOT NULL,
    action TEXT NOT NULL, due_at INTEGER NOT NULL,
    PRIMARY KEY (referrer, referral_id, step, action)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS referral_timers_by_due
    ON referral_timers (due_at, referrer, referral_id, step, action);
CREATE TABLE IF NOT EXISTS referral_pending (
    receiver TEXT NOT NULL, referral_id TEXT NOT NULL, event_id TEXT NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (receiver, referral_id, event_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS referral_pending_by_event ON referral_pending (event_id);
CREATE TABLE IF NOT EXISTS referral_positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
"""


class SqliteLedgerStore:
    """A `referrals.store.LedgerStore` in one SQLite file (WAL mode)."""

    def __init__(self, path: Path | str, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("synchronous must be OFF, NORMAL, FULL or EXTRA")
        self._lock = threading.Lock()
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise LedgerStoreError(f"{self.path} holds ledger format {version}; this "
                                       f"version reads {SCHEMA_VERSION}. Move the file away "
                                       "and the ledger rebuilds it from the log")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as exc:
            raise LedgerStoreError(f"cannot open the referral ledger at {self.path}: "
                                   f"{exc.__class__.__name__}") from exc

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise LedgerStoreError(f"reading the referral ledger failed: "
                                   f"{exc.__class__.__name__}") from exc

    # -- entries -------------------------------------------------------------------------

    def get(self, keys: Iterable[ReferralKey]) -> dict[ReferralKey, ReferralEntry]:
        bodies: list[str] = []
        try:
            with self._lock:
                # Point lookups on the primary key; SQLite scans the table for a
                # row-value IN list.
                for key in dict.fromkeys(keys):
                    row = self._db.execute(
                        "SELECT body FROM referral_entries WHERE referrer = ? AND "
                        "referral_id = ?", (key.referrer, key.referral_id)).fetchone()
                    if row is not None:
                        bodies.append(str(row[0]))
        except sqlite3.Error as exc:
            raise LedgerStoreError(f"reading the referral ledger failed: "
                                   f"{exc.__class__.__name__}") from exc
        found = (entry_from_json(body) for body in bodies)
        return {entry.key: entry for entry in found}

    def keys_for(self, receiver: str, referral_id: str) -> list[ReferralKey]:
        rows = self._read("SELECT referrer, referral_id FROM referral_entries WHERE "
                          "receiver = ? AND referral_id = ? ORDER BY referrer",
                          (receiver, referral_id))
        return [ReferralKey(str(a), str(b)) for a, b in rows]

    def scan(self) -> Iterator[ReferralEntry]:
        last: tuple[str, str] = ("", "")
        while True:
            rows = self._read("SELECT referrer, referral_id, body FROM referral_entries "
                              "WHERE (referrer, referral_id) > (?, ?) "
                              "ORDER BY referrer, referral_id LIMIT 1000", last)
            if not rows:
                return
            for _, _, body in rows:
                yield entry_from_json(str(body))
            last = (str(rows[-1][0]), str(rows[-1][1]))

    def entry_count(self) -> int:
        return int(str(self._read("SELECT count(*) FROM referral_entries")[0][0]))

    # -- pending enrollments -------------------------------------------------------------

    def pending_for(self, receiver: str, referral_id: str) -> list[EnrollmentReported]:
        rows = self._read("SELECT body FROM referral_pending WHERE receiver = ? AND "
                          "referral_id = ? ORDER BY event_id", (receiver, referral_id))
        return [enrollment_from_json(str(body)) for (body,) in rows]

    def pending_count(self) -> int:
        return int(str(self._read("SELECT count(*) FROM referral_pending")[0][0]))

    # -- timers --------------------------------------------------------------------------

    def due(self, now_ms: int, limit: int) -> list[Timer]:
        rows = self._read("SELECT due_at, referrer, referral_id, step, action FROM "
                          "referral_timers WHERE due_at <= ? ORDER BY due_at, referrer, "
                          "referral_id, step, action LIMIT ?", (now_ms, limit))
        return [_timer(row) for row in rows]

    def next_due_at(self) -> int | None:
        value = self._read("SELECT min(due_at) FROM referral_timers")[0][0]
        return None if value is None else int(str(value))

    def timer_count(self) -> int:
        return int(str(self._read("SELECT count(*) FROM referral_timers")[0][0]))

    # -- positions -----------------------------------------------------------------------

    def positions(self) -> dict[tuple[str, int], int]:
        rows = self._read("SELECT topic, partition, next_offset FROM referral_positions")
        return {(str(t), int(str(p))): int(str(o)) for t, p, o in rows}

    # -- writing -------------------------------------------------------------------------

    def write(self, batch: LedgerWrite) -> None:
        entries = [(e.key.referrer, e.key.referral_id, e.match_receiver, entry_to_json(e))
                   for e in batch.entries]
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._write(batch, entries)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise LedgerStoreError(f"writing the referral ledger failed: "
                                   f"{exc.__class__.__name__}") from exc

    def _write(self, batch: LedgerWrite,
               entries: list[tuple[str, str, str | None, str]]) -> None:
        db = self._db
        db.executemany("INSERT OR REPLACE INTO referral_entries VALUES (?, ?, ?, ?)", entries)
        db.executemany(
            "DELETE FROM referral_timers WHERE referrer = ? AND referral_id = ? AND "
            "step = ? AND action = ?",
            [(t.key.referrer, t.key.referral_id, t.step, t.action)
             for t in batch.timers.unschedule])
        db.executemany(
            "INSERT OR REPLACE INTO referral_timers VALUES (?, ?, ?, ?, ?)",
            [(t.key.referrer, t.key.referral_id, t.step, t.action, t.due_at)
             for t in batch.timers.schedule])
        db.executemany(
            "INSERT OR IGNORE INTO referral_pending VALUES (?, ?, ?, ?)",
            [(p.enrolled_by, p.referral_id, p.event_id, enrollment_to_json(p))
             for p in batch.pending_added])
        db.executemany("DELETE FROM referral_pending WHERE event_id = ?",
                       [(event_id,) for event_id in batch.pending_resolved])
        db.executemany(
            "INSERT INTO referral_positions VALUES (?, ?, ?) ON CONFLICT (topic, partition) "
            "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
            [(p.topic, p.partition, p.offset) for p in batch.positions])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _timer(row: tuple[object, ...]) -> Timer:
    due_at, referrer, referral_id, step_text, action = row
    step = next((s for s in STEPS if s == step_text), None)
    if step is None or action not in ("RAISE", "CLEAR"):
        raise LedgerStoreError("the referral ledger holds a timer it cannot read")
    kind: Action = "RAISE" if action == "RAISE" else "CLEAR"
    return Timer(int(str(due_at)), ReferralKey(str(referrer), str(referral_id)), step, kind)
