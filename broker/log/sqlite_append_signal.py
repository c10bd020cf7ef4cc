"""Telling waiting readers that records were appended to the embedded log.

Appends through this process wake waiters at once, through a condition variable. Appends
by another process on the same database file (a split deployment: router in one process,
API and delivery in another) cannot notify us, so one watcher thread per log looks at
SQLite's `PRAGMA data_version` every `poll_interval_s` while anyone is waiting: it
changes whenever another connection commits, and reading it costs no disk I/O.

One watcher serves every waiter of the log, so a delivery process holding a hundred
server-sent-event streams polls as often as one holding a single stream; with nobody
waiting, it does not poll at all. What a waiter costs is a sleep and wake-up of the
watcher thread per interval (about 50 µs of CPU here), so 2 ms costs about 2.5% of one
core per process that has a waiter, and 50 ms about 0.2% (`bench/` figures in
docs/operations.md).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from broker.log.sqlite_storage import connect

log = logging.getLogger(__name__)

_ERROR_BACKOFF_S = 0.5
"""How long the watcher pauses after failing to read the database's version."""


class AppendSignal:
    """A counter that goes up on every append, and a way to sleep until it does."""

    def __init__(self, path: Path, poll_interval_s: float, busy_timeout_s: float) -> None:
        if poll_interval_s <= 0:
            raise ValueError("the cross-process poll interval must be positive")
        self._path = path
        self._poll_interval_s = poll_interval_s
        lock = threading.Lock()
        self._changed = threading.Condition(lock)
        """Notified on every announcement; waiters sleep on it."""
        self._demand = threading.Condition(lock)
        """Notified when the first waiter arrives or the signal closes; the watcher
        sleeps on it while nobody waits."""
        # Guarded by the lock:
        self._generation = 0
        self._waiters = 0
        self._closing = False
        self._watch_thread: threading.Thread | None = None
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
        with self._changed:
            if self._closing:
                return True  # closed: let the waiter find out
            self._waiters += 1
            if self._waiters == 1:
                self._start_watching()
            try:
                while self._generation == generation:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(remaining)
                return True
            finally:
                self._waiters -= 1

    def close(self) -> None:
        """Stop watching the file and wake every waiter. Idempotent."""
        with self._changed:
            self._closing = True
            self._demand.notify_all()
        with self._watch_lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()
        self.announce()

    # -- the watcher thread ---------------------------------------------------------------

    def _start_watching(self) -> None:
        # Called with the lock held, by the first waiter.
        if self._watch_thread is None:
            self._watch_thread = threading.Thread(
                target=self._watch, name="handoff-log-watch", daemon=True)
            self._watch_thread.start()
        else:
            self._demand.notify_all()

    def _watch(self) -> None:
        while True:
            with self._changed:
                while self._waiters == 0 and not self._closing:
                    self._demand.wait()
                if self._closing:
                    return
            time.sleep(self._poll_interval_s)
            try:
                changed = self._other_connection_committed()
            except sqlite3.Error as exc:
                # Waiters are woken to read for themselves, where the error surfaces as
                # a log error; the watcher keeps going so a passing fault heals.
                log.warning("cannot watch %s for appends by other processes: %s",
                            self._path, exc)
                self.announce()
                time.sleep(_ERROR_BACKOFF_S)
                continue
            if changed:
                self.announce()

    def _other_connection_committed(self) -> bool:
        with self._watch_lock:
            if self._watcher is None:
                return False
            version = self._read_data_version(self._watcher)
            changed = version != self._seen_version
            self._seen_version = version
        return changed

    @staticmethod
    def _read_data_version(connection: sqlite3.Connection) -> int:
        return int(connection.execute("PRAGMA data_version").fetchone()[0])
