"""Stopping on SIGTERM as cleanly as on Ctrl-C.

systemd, Docker and Kubernetes stop a process with SIGTERM. Every long-running command
(`handoff serve` in any role, `handoff connect run`, `handoff demo`) treats it as a
request to stop: the HTTP server stops taking requests and finishes those in flight,
the broker's workers stop in reverse order, the last one signing a final audit
checkpoint, and the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn

log = logging.getLogger("handoff")


class GracefulServer(uvicorn.Server):
    """uvicorn's server, stopping on SIGTERM without raising the signal again once it
    has stopped (uvicorn does, which kills the process before the broker can stop).
    `on_exit`, if set, is called first on either signal."""

    on_exit: Callable[[], None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.on_exit is not None:
            self.on_exit()
        if sig != signal.SIGTERM:
            super().handle_exit(sig, frame)
            return
        if self.should_exit:
            log.warning("SIGTERM again: not waiting for open connections any longer")
            self.force_exit = True
        self.should_exit = True


@contextmanager
def stopping_on_sigterm(stop: Callable[[], None]) -> Iterator[None]:
    """Within the block, SIGTERM calls `stop` (in the main thread only; elsewhere the
    block runs unchanged). The previous handler is put back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt() -> None:
    """A `stop` for `stopping_on_sigterm` that ends the main thread's work the way
    Ctrl-C does (with `KeyboardInterrupt`), through its `finally` blocks."""
    raise KeyboardInterrupt


def ignore_while_stopping() -> None:
    """A `stop` for `stopping_on_sigterm` around the shutdown itself: a second SIGTERM
    must not cut a final checkpoint short."""
    log.info("SIGTERM while stopping: already stopping")
