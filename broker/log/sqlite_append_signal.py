"""Telling waiting readers that records were appended to the embedded log.

Appends through this process wake waiters at once, through a condition variable. Appends
by another process on the same database file cannot notify us, so waiters also look at
SQLite's `PRAGMA data_version` every `poll_interval_s`: it changes whenever another
connection commits, and reading it costs no disk I/O.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from broker.log.sqlite_storage import connect, translate_error


class AppendSignal:
    """A counter that goes up on every append, and a way to sleep until it does."""

    def __init__(self, path: Path, poll_interval_s: float, busy_timeout_s: float) -> None:
        self._path = path
        self._poll_interval_s = poll_interval_s
        self._changed = threading.Condition()
        self._generation = 0
        self._watch_lock = threading.Lock()
        self._watcher: sqlite3.Connection | None = connect(
            path, sync=None, busy_timeout_s=busy_timeout_s
        )
        try:
            self._seen_version = self._read_data_version(self._watcher)
        except BaseException:
            self._watcher.close()
            raise

    def generation(self) -> int:
        """The current count; pass it to `wait_for_change`."""
        with self._changed:
            return self._generation

    def announce(self) -> None:
        """Wake every waiter: records were appended (or the log is closing)."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def wait_for_change(self, generation: int, timeout: float) -> bool:
        """Sleep until the count moves past `generation` or an append by another process
        is seen (True), or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                if self._generation == generation:
                    self._changed.wait(min(remaining, self._poll_interval_s))
                if self._generation != generation:
                    return True
            if self._other_connection_committed():
                return True

    def close(self) -> None:
        """Stop watching the file and wake every waiter. Idempotent."""
        with self._watch_lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()
        self.announce()

    def _other_connection_committed(self) -> bool:
        with self._watch_lock:
            if self._watcher is None:
                return True  # closed: let the waiter find out
            try:
                version = self._read_data_version(self._watcher)
            except sqlite3.Error as exc:
                raise translate_error(exc, "watch for new records", self._path) from exc
            changed = version != self._seen_version
            self._seen_version = version
        if changed:
            self.announce()
        return changed

    @staticmethod
    def _read_data_version(connection: sqlite3.Connection) -> int:
        return int(connection.execute("PRAGMA data_version").fetchone()[0])
