"""A key ring that follows its keys file, so issued, rotated and revoked keys take
effect in a running broker without a restart.

The file is looked at (one `stat`) at most once per `interval` seconds, and read again
only when its modification time, size or inode changed; `reload()` forces a read (the
broker calls it on SIGHUP). A file that fails to parse leaves the last good keys in
force and says so in the log, naming the problem but never a digest.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from broker.auth.keys import KeyCheck, KeyRing, Principal, read_keys
from broker.errors import ConfigError

log = logging.getLogger("handoff.auth")


class FileKeyRing(KeyRing):
    """A `KeyRing` over a keys file, refreshed when the file changes."""

    def __init__(self, path: Path, interval: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(read_keys(path), clock=clock)
        self.path = path
        self.interval = interval
        self.last_error: str | None = None
        self.on_change: Callable[[dict[str, list[str]]], None] | None = None
        """Called after a reload with the key ids added, removed and changed."""
        self._entries = {k.id: k for k in read_keys(path)}
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._next_look = time.monotonic() + interval

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def check(self, secret: str) -> KeyCheck:
        self._maybe_refresh()
        return super().check(secret)

    def check_digest(self, digest: str) -> KeyCheck:
        self._maybe_refresh()
        return super().check_digest(digest)

    def check_subject(self, names: Iterable[str]) -> KeyCheck:
        self._maybe_refresh()
        return super().check_subject(names)

    def lapsed(self, principal: Principal) -> str | None:
        self._maybe_refresh()
        return super().lapsed(principal)

    def _maybe_refresh(self) -> None:
        now = time.monotonic()
        if now < self._next_look:
            return
        self._next_look = now + self.interval
        if self._stat() != self._stamp:
            self.reload()

    def reload(self) -> bool:
        """Read the file again. True when the new keys are in force."""
        with self._lock:
            stamp = self._stat()
            try:
                keys = read_keys(self.path)
            except ConfigError as exc:
                self._stamp = stamp
                self.last_error = str(exc)
                log.error("keys file refused, keeping the last good keys: %s", exc)
                return False
            fresh = KeyRing(keys)
            # Each map is replaced whole, so a lookup never sees a half-read file.
            self._by_digest, self._by_subject = fresh._by_digest, fresh._by_subject
            self._by_id = fresh._by_id
            self._stamp = stamp
            self.last_error = None
            entries = {k.id: k for k in keys}
            change = {
                "added": sorted(entries.keys() - self._entries.keys()),
                "removed": sorted(self._entries.keys() - entries.keys()),
                "changed": sorted(i for i in entries.keys() & self._entries.keys()
                                  if entries[i] != self._entries[i]),
            }
            self._entries = entries
            log.info("keys file read: %d key(s) in force", len(self))
        if self.on_change is not None and any(change.values()):
            self.on_change(change)
        return True
