"""A doorbell between processes that share one embedded log: who appended to which topics.

Every process waiting on the log binds one Unix datagram socket in the log's doorbell
folder (`<data>/log.db-bell/`, a name per log object). A process that appended rings
every other socket there after its commit, naming the topics that advanced, so a waiting
process wakes at once and looks only at what advanced, instead of polling SQLite's
`PRAGMA data_version` every couple of milliseconds.

A ring never blocks nor fails an append: the send is non-blocking, a full receive buffer
(the waiter is behind and will read everything anyway) and any other error are counted
and ignored. A socket nobody listens on any more (its process ended without tidying)
answers "connection refused" and is removed by the first process that rings it. Rings
can be lost (a full buffer, a process that is joining the folder as the ring is sent, a
foreign writer such as an older version): the waiting side keeps a slow poll of
`data_version` as the safety net (`log.doorbell_poll_ms`).

A socket's path is at most 107 bytes; a deeper data directory binds and sends through
`/proc/self/fd/<folder>/<name>` (Linux); where neither works the doorbell is off and the
log polls as before (`log.cross_process_poll_ms`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import select
import socket
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

_MAX_PATH = 100
"""Longest socket path bound as is (the kernel's limit is 107 bytes and a NUL)."""
_RELIST_S = 1.0
"""The folder is listed again at least this often, even when its mtime says nothing
changed (a coarse file-system clock can hide a socket bound within the same tick)."""
_RECEIVE_BUFFER = 1 << 16
_MAX_RING = 8192
"""Longest ring payload; rings naming more topics than fit say "everything" instead."""
EVERYTHING = b"*"
"""The payload of a ring that names no topics: look at everything."""


class Doorbell:
    """This process's doorbell socket in `folder`, and the bell-pull for everyone else's.

    `ring` is safe from any thread and never raises; `receive` is for one thread only.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._folder = folder
        self._dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        self._name = f"{os.getpid():x}-{secrets.token_hex(4)}"
        self._inbox: socket.socket | None = None
        self._outbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._outbox.setblocking(False)
        self._peers: tuple[str, ...] = ()
        self._listed_mtime = -1
        self._listed_at = 0.0
        self.rings_sent = 0
        self.rings_dropped = 0
        """Rings a full receive buffer refused (that waiter was behind anyway)."""
        self.rings_failed = 0
        """Rings that failed otherwise (counted, logged once, never raised)."""
        self._warned = False

    @property
    def listening(self) -> bool:
        return self._inbox is not None

    def listen(self) -> None:
        """Bind this process's socket, so rings reach it from now on. Idempotent."""
        if self._inbox is not None:
            return
        inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            inbox.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            inbox.bind(self._address(self._name))
        except BaseException:
            inbox.close()
            raise
        inbox.setblocking(False)
        self._inbox = inbox

    def ring(self, topics: Iterable[str] | None) -> None:
        """Tell every other listening process that `topics` advanced (None: anything)."""
        payload = EVERYTHING if topics is None else "\n".join(topics).encode()
        if len(payload) > _MAX_RING:
            payload = EVERYTHING
        try:
            peers = self._current_peers()
        except OSError as exc:
            self._failed(exc)
            return
        for peer in peers:
            try:
                self._outbox.sendto(payload, self._address(peer))
                self.rings_sent += 1
            except BlockingIOError:
                self.rings_dropped += 1
            except (ConnectionRefusedError, FileNotFoundError):
                self._forget(peer)
            except OSError as exc:
                self._failed(exc)

    def receive(self, timeout: float) -> list[bytes]:
        """Rings that arrived, waiting up to `timeout` seconds for the first one; every
        ring already queued is taken at once (several rings, one wake-up)."""
        inbox = self._inbox
        if inbox is None:
            time.sleep(timeout)
            return []
        try:
            ready, _, _ = select.select([inbox], [], [], max(timeout, 0.0))
        except InterruptedError:
            return []
        except (OSError, ValueError):
            return []  # closed under us: the log is closing
        if not ready:
            return []
        rings = []
        while True:
            try:
                rings.append(inbox.recv(_MAX_RING))
            except (BlockingIOError, InterruptedError):
                return rings
            except OSError:
                return rings  # closed under us: the log is closing

    def wake(self) -> None:
        """Ring this process's own socket (to end a `receive` early)."""
        if self._inbox is not None:
            with contextlib.suppress(OSError):
                self._outbox.sendto(EVERYTHING, self._address(self._name))

    def close(self) -> None:
        """Stop listening and remove this process's socket. Idempotent."""
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.close()
            with contextlib.suppress(OSError):
                os.unlink(self._name, dir_fd=self._dir_fd)
        self._outbox.close()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    # -- internals ------------------------------------------------------------------------

    def _address(self, name: str) -> str:
        path = os.path.join(self._folder, name)
        if len(path) <= _MAX_PATH:
            return path
        return f"/proc/self/fd/{self._dir_fd}/{name}"

    def _current_peers(self) -> tuple[str, ...]:
        now = time.monotonic()
        mtime = os.stat(self._dir_fd).st_mtime_ns
        if mtime != self._listed_mtime or now - self._listed_at >= _RELIST_S:
            self._listed_mtime, self._listed_at = mtime, now
            self._peers = tuple(name for name in os.listdir(self._dir_fd)
                                if name != self._name and not name.startswith("."))
        return self._peers

    def _forget(self, peer: str) -> None:
        # Refused: no socket is bound to that file any more; its process is gone.
        with contextlib.suppress(OSError):
            os.unlink(peer, dir_fd=self._dir_fd)
        self._peers = tuple(p for p in self._peers if p != peer)

    def _failed(self, exc: OSError) -> None:
        self.rings_failed += 1
        if not self._warned:
            self._warned = True
            log.warning("cannot ring the embedded log's doorbell in %s (%s); waiting "
                        "processes notice appends at their next poll instead",
                        self._folder, errno.errorcode.get(exc.errno or 0, exc))


def open_doorbell(folder: Path) -> Doorbell | None:
    """A doorbell in `folder`, or None (logged) where Unix datagram sockets or the folder
    are not available: the log then polls."""
    if not hasattr(socket, "AF_UNIX"):
        return None
    try:
        return Doorbell(folder)
    except OSError as exc:
        log.warning("the embedded log's doorbell is off (%s: %s); processes sharing the "
                    "log poll for each other's appends instead", folder, exc.strerror)
        return None
