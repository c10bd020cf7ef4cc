"""Remembers which (source agency, event_id) pairs were accepted, and where they went,
so a publisher that re-sends an event after a timeout gets the original answer back."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from broker.errors import LogError


@dataclass(frozen=True, slots=True)
class Accepted:
    topic: str
    partition: int
    offset: int


class IdempotencyIndex(Protocol):
    def lookup(self, source: str, event_ids: Iterable[str]) -> dict[str, Accepted]: ...

    def remember(self, source: str, accepted: dict[str, Accepted]) -> None: ...

    def close(self) -> None: ...


class SqliteIdempotencyIndex:
    """The index in a SQLite file beside the embedded log.

    It is written after the log append, so a crash between the two can let one re-sent
    event be appended twice; both copies carry the same `event_id`, which is how
    subscribers recognise duplicates under at-least-once delivery.
    """

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS accepted (source TEXT NOT NULL, event_id TEXT "
                "NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, "
                "offset INTEGER NOT NULL, PRIMARY KEY (source, event_id)) WITHOUT ROWID"
            )
        except sqlite3.Error as exc:
            raise LogError(f"cannot open the idempotency index at {path}: {exc}") from exc

    def lookup(self, source: str, event_ids: Iterable[str]) -> dict[str, Accepted]:
        ids = list(event_ids)
        found: dict[str, Accepted] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT event_id, topic, partition, offset FROM accepted "  # noqa: S608
                    f"WHERE source = ? AND event_id IN ({marks})",
                    (source, *chunk),
                ).fetchall()
                for event_id, topic, partition, offset in rows:
                    found[event_id] = Accepted(topic, partition, offset)
        return found

    def remember(self, source: str, accepted: dict[str, Accepted]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO accepted VALUES (?, ?, ?, ?, ?)",
                [(source, eid, a.topic, a.partition, a.offset) for eid, a in accepted.items()],
            )
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
