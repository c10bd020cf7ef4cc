"""A publish request as group commit holds it, and how it is answered: where its
events went (`Placed`), or the error, through a `concurrent.futures.Future` or, for a
request committed on an event loop, a future of that loop."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass, field

from broker.log.port import NewRecord

log = logging.getLogger("handoff.ingest")


@dataclass(frozen=True, slots=True)
class Placed:
    """Where one event of a request ended up."""

    event_id: str
    topic: str
    partition: int
    offset: int
    duplicate: bool

    def to_dict(self) -> dict[str, object]:
        return {"event_id": self.event_id, "topic": self.topic, "partition": self.partition,
                "offset": self.offset, "duplicate": self.duplicate}


Answer = Future[list[Placed]] | asyncio.Future[list[Placed]]
"""What `GroupCommitter.submit` returns: resolved once the request's events are durable.
An `asyncio.Future` of the running loop when the request is committed on that loop,
otherwise a `concurrent.futures.Future`."""
OnPlaced = Callable[[list[Placed]], None]
"""Called with where a request's events went once they are durable, before its answer."""


@dataclass
class Request:
    agency: str
    topic: str
    event_ids: list[str]
    records: list[NewRecord]
    future: Answer = field(default_factory=Future)
    loop: asyncio.AbstractEventLoop | None = None
    """The loop `future` belongs to (None: a `concurrent.futures.Future`)."""
    loop_thread: int = 0
    """The thread running `loop`."""
    on_placed: OnPlaced | None = None

    def settle(self, placed: list[Placed] | None, error: BaseException | None) -> None:
        """Answer the request with `placed`, or with `error` when it is not None;
        `on_placed` is called first, whether or not anybody still awaits the answer."""
        if error is None and self.on_placed is not None:
            try:
                self.on_placed(placed or [])
            except Exception:   # the events are durable: the answer still goes out
                log.exception("handling a committed publish failed")
        loop = self.loop
        if loop is None:
            future = self.future
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(placed or [])
        elif threading.get_ident() == self.loop_thread:
            settle_on_loop(self.future, placed, error)
        else:   # handed to the committer thread: answered on its loop
            with suppress(RuntimeError):   # the loop closed: nobody waits
                loop.call_soon_threadsafe(settle_on_loop, self.future, placed, error)


def settle_on_loop(future: Answer, placed: list[Placed] | None,
                    error: BaseException | None) -> None:
    if future.done():   # its waiter was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(placed or [])
