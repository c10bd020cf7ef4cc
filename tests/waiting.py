"""Waiting in tests for something to become true, instead of sleeping and hoping.

    from tests.waiting import eventually

    rows = eventually(lambda: list(store.iter_records(AuditFilter(kind="decision"))), timeout=20,
                      message="no decision was audited")

`eventually` asks `condition` until it returns something truthy, and returns that; after
`timeout` seconds it fails the test with `message`. A condition may also act (publish a
wave, poll a consumer, pull a page) before it answers: `interval=0` then asks again at
once, for conditions that block on their own.

`Background` runs a blocking call on a thread of its own; its `blocked_in` tells whether
the call is parked inside a given function, so a test can make sure a waiter is really
waiting before it does what should wake it:

    waiter = Background(lambda: log.wait({(topic, 0): 0}, timeout=20))
    eventually(lambda: waiter.blocked_in(SqliteEventLog.wait))
    log.append(topic, [NewRecord(b"news")])
    assert waiter.result(timeout=20) is True
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Generic, TypeVar

T = TypeVar("T")


class NeverHappened(AssertionError):
    """What `eventually` raises when the condition did not hold in time."""


def eventually(condition: Callable[[], T | None], *, timeout: float = 10.0,
               interval: float = 0.05,
               message: str | Callable[[], str] = "the condition never held",
               ignoring: tuple[type[BaseException], ...] = ()) -> T:
    """The first truthy value `condition()` returns within `timeout` seconds.

    `condition` is asked at least once, and once more at the deadline. Exceptions of the
    types in `ignoring` count as "not yet" (the last one is chained to the failure); any
    other exception ends the wait at once. `message` (or what it returns, asked only on
    failure, so it may read a process's log) says what did not happen.
    """
    deadline = time.monotonic() + timeout
    while True:
        error: BaseException | None = None
        try:
            value = condition()
        except ignoring as exc:
            error = exc
        else:
            if value:
                return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            text = message() if callable(message) else message
            raise NeverHappened(f"{text} (waited {timeout:g} s)") from error
        if interval > 0:
            time.sleep(min(interval, remaining))


class Background(Generic[T]):
    """`call()` running on a daemon thread; `result` hands back what it returned or raised."""

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as exc:  # handed to the test by result()
            self._error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def blocked_in(self, function: Callable[..., object]) -> bool:
        """Whether the call is parked on a lock or condition somewhere inside `function`."""
        return blocked_in(self._thread, function)

    def result(self, timeout: float) -> T:
        """What the call returned (its exception is raised here); fails the test if it
        is still running after `timeout` seconds."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise NeverHappened(f"the call in the background did not return in {timeout:g} s")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def blocked_in(thread: threading.Thread, function: Callable[..., object]) -> bool:
    """Whether `thread` is parked on a lock or condition (in `threading`) somewhere inside
    `function`, a plain function or method such as `SqliteEventLog.wait`."""
    code = getattr(function, "__code__", None)
    if code is None or thread.ident is None:
        return False
    innermost: FrameType | None = sys._current_frames().get(thread.ident)
    if innermost is None or innermost.f_code.co_filename != threading.__file__:
        return False
    frame: FrameType | None = innermost
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False
