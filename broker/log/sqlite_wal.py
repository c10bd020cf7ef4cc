"""Folding a SQLite file's write-ahead log back into the database off the writer's path.

SQLite folds the write-ahead log into the database (a checkpoint: copy the pages, sync)
inside the commit that makes the log pass `wal_autocheckpoint` pages, so every few
megabytes one commit of the router takes tens of milliseconds longer (measured: the
embedded log's commits p50 0.17 ms, p99 26 ms; the audit store's p50 0.29 ms, max
139 ms), and every event waiting behind that step waits too. `WalCheckpointer` does the
same work from a thread of its own, at most every `every_s` seconds after this process
wrote, while writers go on appending to the log (a passive checkpoint takes no write
lock). The writer keeps SQLite's own checkpoint, at a higher threshold set by its
owner, in case this thread falls behind; a checkpoint never changes what a database
holds, only where its pages are, so durability is as before.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class WalCheckpointer:
    """A thread that checkpoints `path` (in WAL mode) soon after `wrote()` is called."""

    def __init__(self, path: Path, every_s: float = 0.5, busy_timeout_s: float = 5.0
                 ) -> None:
        self._path = path
        self._every_s = every_s
        self._busy_timeout_s = busy_timeout_s
        self._wrote = threading.Event()
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="handoff-wal-checkpoint",
                                        daemon=True)
        self._thread.start()

    def wrote(self) -> None:
        """This process committed: checkpoint within `every_s`."""
        self._wrote.set()

    def close(self) -> None:
        """Stop the thread (after a last checkpoint if something was written). Idempotent."""
        self._stop.set()
        self._wrote.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, timeout=self._busy_timeout_s,
                                 isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log.warning("no background checkpoints for %s (%s); commits fold the "
                        "write-ahead log themselves", self._path, exc)
            return
        try:
            while True:
                self._wrote.wait()
                if self._stop.wait(self._every_s):
                    break
                self._wrote.clear()
                self._checkpoint(db)
            self._checkpoint(db)
        finally:
            db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            # Busy (another process checkpoints) or a passing fault: the next write
            # tries again, and the writer's own checkpoint is the backstop.
            if not self._warned:
                self._warned = True
                log.warning("background checkpoint of %s failed (%s); retrying after "
                            "the next write", self._path, exc)
