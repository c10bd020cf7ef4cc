"""Server-sent-event streams and long polls of one process share one reader per
delivery topic.

A `Hub` per subscription reads `deliver.<subscription>` once and renders each delivery
into its frame once: the SSE text and the JSON body a pull answers with. A delivery's
frame is the same for every key of the subscription's agency (the view is decided per
subscription, not per key), so there is one variant per record.

On the embedded log the hub lives on the event loop: the log tells it of appends to its
topic (this process's own, or another's through the doorbell; `LoopBell` turns each
burst of them into one wake-up of the loop), and it reads and renders right there, with
no thread hop and no query asking whether there is something to read. A backlog (a read
that came back full) is read on the loop as well, `ON_LOOP` records at a time with the
loop's other work run between two reads: a worker thread would take the interpreter
lock from the loop at every row SQLite steps through (their hand-offs cost more than
the reads). No append is slept through:
the hub clears its event before each read, and the log tells of an append only after
committing it, so an append the read did not see sets the event again. On a log that
cannot tell (Kafka, whose wait is a long-poll fetch) the hub waits and reads in one
worker thread at a time.

Each open stream that has caught up with the hub is a listener with a bounded buffer of
frames (`STREAM_BUFFER`, or one batch of the hub's when its buffer was empty); the hub
appends each new batch to every listener's buffer and wakes it, on the event loop, with
no thread per stream. A stream whose buffer would overflow (a client that stopped
reading) is dropped from the listeners, drains what it holds, then reads from its own
cursor in worker threads (`read_steps` up to the hub's position) until it has caught up,
and rejoins: it never loses an event and never holds the others back. A stream opened or
resumed with an older cursor catches up the same way; the hub keeps its last `RING`
frames, so a cursor among them joins at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import islice

import anyio
import anyio.to_thread

from broker.delivery.cursor import Cursor
from broker.delivery.feed import Delivery, DeliveryFeed
from broker.delivery.frames import Frame, render
from broker.delivery.loop_bell import LoopBell

log = logging.getLogger(__name__)

STREAM_BUFFER = 256
"""Frames a stream may hold unsent before it falls back to reading on its own."""
RING = 256
"""Latest frames the hub keeps, so a cursor among them joins without a read."""
BATCH = 500
"""Records the hub reads at most per partition and hop, where it waits in a worker
thread (a log that cannot tell of appends)."""
ON_LOOP = 64
"""Records the hub reads at most at a time on the event loop; a read that comes back
full means a backlog, read on after the loop's other work has run, until a read comes
back short."""
CATCH_UP = 200
"""Records a stream reads at most per hop while catching up on its own."""
WAIT_SECONDS = 5.0
"""Longest single wait of the hub's reader on the log (it then looks at its users)."""
OWN_WAIT_SECONDS = 1.0
"""Longest wait of a reader whose cursor is past the hub's before it reads again."""
IDLE_SECONDS = 30.0
"""A hub with no stream or poll for this long stops reading."""


@dataclass(frozen=True, slots=True)
class Page:
    """Deliveries after a cursor, as frames, and the cursor after the last of them."""

    frames: tuple[Frame, ...]
    next: Cursor

    @property
    def deliveries(self) -> list[Delivery]:
        return [f.delivery for f in self.frames]


class _Listener:
    """A stream that has caught up: the frames the hub handed it, not yet sent."""

    __slots__ = ("frames", "overflowed", "wake")

    def __init__(self, wake: asyncio.Event) -> None:
        self.frames: deque[Frame] = deque()
        self.overflowed = False
        self.wake = wake


class Hub:
    """The shared reader of one subscription's delivery topic in this process."""

    def __init__(self, feed: DeliveryFeed, subscription_id: str,
                 limiter: anyio.CapacityLimiter, *, buffer: int = STREAM_BUFFER,
                 ring: int = RING, on_fallback: Callable[[str], None] | None = None,
                 bell: LoopBell | None = None) -> None:
        """With `bell`, the hub asks the feed to be told of appends (and reads on the
        loop when it can be); without, it waits in worker threads."""
        self._feed = feed
        self._bell = bell
        self._told = asyncio.Event()
        self._backlog = False
        self._on_fallback = on_fallback
        self.subscription_id = subscription_id
        self._limiter = limiter
        self._buffer = buffer
        self._ring: deque[Frame] = deque(maxlen=ring)
        self._listeners: set[_Listener] = set()
        self._cursor = Cursor(())
        self._ready = asyncio.Event()
        self._wakers: set[asyncio.Event] = set()
        self._error: BaseException | None = None
        self._closed = False
        self._users = 0
        self._last_used = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self.fallbacks = 0
        """Times a stream overflowed its buffer and fell back to reading on its own."""

    # -- the reader --------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"handoff-fanout-{self.subscription_id}")

    @property
    def stopped(self) -> bool:
        """The reader ended (idle, failed or closed); a new hub takes over."""
        return self._closed

    async def ready(self) -> None:
        await self._ready.wait()
        self._raise_if_failed()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        unwatch = None
        try:
            # Told from before the first look at the log on: no append is missed.
            if self._bell is not None:
                unwatch = self._feed.watch(self.subscription_id, self._bell.pull(self._told))
            offsets = await anyio.to_thread.run_sync(
                self._feed.end_offsets, self.subscription_id, limiter=self._limiter)
            self._cursor = Cursor(tuple(offsets))
            self._ready.set()
            while self._users or self._listeners or (
                    time.monotonic() - self._last_used < IDLE_SECONDS):
                if unwatch is not None:
                    frames = await self._told_batch()
                else:
                    frames = await anyio.to_thread.run_sync(
                        self._next_batch, self._cursor, limiter=self._limiter,
                        abandon_on_cancel=True)
                if frames:
                    self._publish(frames)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every waiter raises it; the next caller starts anew
            log.exception("reading deliveries of %s failed", self.subscription_id)
            self._error = exc
        finally:
            if unwatch is not None:
                unwatch()
            self._closed = True
            self._ring.clear()
            self._ready.set()
            self._wake_all()

    async def _told_batch(self) -> tuple[Frame, ...]:
        """On the loop: the next records after the hub's cursor, once the log told of
        an append (or `WAIT_SECONDS` passed) when the last read had taken all there was."""
        if not self._backlog:
            with anyio.move_on_after(WAIT_SECONDS):
                await self._told.wait()
        else:
            # A backlog is read on the loop too, `ON_LOOP` at a time, the loop's other
            # work (requests, the other hubs, the streams) running between two reads.
            await asyncio.sleep(0)
        # Cleared before the read: an append the read does not see is told of after it,
        # so the next wait ends at once; a short read took everything else.
        self._told.clear()
        frames = self._read(self._cursor, ON_LOOP)
        self._backlog = len(frames) >= ON_LOOP
        return frames

    def _read(self, cursor: Cursor, limit: int) -> tuple[Frame, ...]:
        return render(cursor, self._feed.read_steps(self.subscription_id, cursor, limit))

    def _next_batch(self, cursor: Cursor) -> tuple[Frame, ...]:
        """In a worker thread: the next records after `cursor`, waiting for them a
        while when there are none, rendered into frames."""
        # `wait` answers at once when records are there already: one read per batch.
        if not self._feed.wait(self.subscription_id, cursor, WAIT_SECONDS):
            return ()
        return render(cursor, self._feed.read_steps(self.subscription_id, cursor, BATCH))

    def _publish(self, frames: tuple[Frame, ...]) -> None:
        self._ring.extend(frames)
        self._cursor = frames[-1].after
        for listener in tuple(self._listeners):
            # A listener that has sent everything takes a whole batch, however large
            # (the hub reads at most BATCH per partition): only a client that has not
            # read what it was given overflows.
            if listener.frames and len(listener.frames) + len(frames) > self._buffer:
                # Dropped whole: what it holds ends where this batch begins, so its own
                # reads start exactly there.
                listener.overflowed = True
                self._listeners.discard(listener)
                self.fallbacks += 1
                if self._on_fallback is not None:
                    self._on_fallback(self.subscription_id)
            else:
                listener.frames.extend(frames)
            listener.wake.set()
        self._announce()

    def _announce(self) -> None:
        for wake in self._wakers:
            wake.set()

    def _wake_all(self) -> None:
        self._announce()
        for listener in self._listeners:
            listener.wake.set()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    # -- pages and streams -------------------------------------------------------------

    def touch(self) -> None:
        """Keep reading for another `IDLE_SECONDS` at least (a caller is on its way)."""
        self._last_used = time.monotonic()

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Keeps the hub reading while a stream or poll uses it."""
        self._users += 1
        try:
            yield
        finally:
            self._users -= 1
            self._last_used = time.monotonic()

    async def page(self, cursor: Cursor, limit: int) -> Page:
        """Up to `limit` deliveries after `cursor`, without waiting: from the hub's
        frames when `cursor` is among them, else read on the caller's own."""
        self._raise_if_failed()
        self._last_used = time.monotonic()
        if cursor == self._cursor:
            return Page((), cursor)
        start = self._ring_index(cursor)
        if start is not None:
            frames = tuple(islice(self._ring, start, start + limit))
            return Page(frames, frames[-1].after)
        return await self._own_read(cursor, limit)

    async def wait(self, wake: asyncio.Event, timeout: float) -> None:
        """Wait until the hub hands out new frames, `wake` is set by someone else, or
        `timeout` passes (then `wake` is clear again)."""
        self._wakers.add(wake)
        try:
            with anyio.move_on_after(timeout):
                await wake.wait()
        finally:
            self._wakers.discard(wake)
            wake.clear()

    async def follow(self, cursor: Cursor, tick: float,
                     wake: asyncio.Event | None = None) -> AsyncIterator[str]:
        """The SSE text of every delivery after `cursor`, in order, a chunk per batch
        at hand; an empty chunk after `tick` seconds with nothing to send, or as soon as
        someone else sets `wake` (a caller with something to look at, such as its key)."""
        wake = wake or asyncio.Event()
        position = cursor
        with self.in_use():
            while not self._closed:
                listener = self._join(position, wake)
                if listener is None:
                    # Catching up, or a cursor past the hub's (read on our own then).
                    page = await self._own_read(position, CATCH_UP)
                    if page.next != position:
                        position = page.next
                        yield "".join(f.sse for f in page.frames)
                    else:
                        await self.wait(wake, min(tick, OWN_WAIT_SECONDS))
                        yield ""
                    continue
                try:
                    while True:
                        if listener.frames:
                            taken = [listener.frames.popleft()
                                     for _ in range(min(len(listener.frames), CATCH_UP))]
                            position = taken[-1].after
                            yield "".join(f.sse for f in taken)
                            continue
                        if listener.overflowed or self._closed:
                            break
                        with anyio.move_on_after(tick):
                            await wake.wait()
                        wake.clear()
                        if not listener.frames:
                            yield ""
                finally:
                    self._listeners.discard(listener)
            self._raise_if_failed()

    def _join(self, position: Cursor, wake: asyncio.Event) -> _Listener | None:
        """A listener starting right after `position`, or None when `position` is
        neither the hub's nor among its frames (or too far back for one buffer)."""
        listener = _Listener(wake)
        if position == self._cursor:
            self._listeners.add(listener)
            return listener
        start = self._ring_index(position)
        if start is None or len(self._ring) - start > self._buffer:
            return None
        listener.frames.extend(islice(self._ring, start, None))
        self._listeners.add(listener)
        return listener

    def _ring_index(self, position: Cursor) -> int | None:
        for index, frame in enumerate(self._ring):
            if frame.before == position:
                return index
        return None

    async def _own_read(self, cursor: Cursor, limit: int) -> Page:
        """Read after `cursor` in a worker thread, no further than the hub has read when
        `cursor` is behind it (so the reader arrives exactly at one of its positions)."""
        hub = self._cursor
        behind = len(hub.offsets) == len(cursor.offsets) and all(
            mine <= theirs for mine, theirs in zip(cursor.offsets, hub.offsets, strict=True))
        until = hub if behind else None

        def read() -> tuple[Frame, ...]:
            return render(cursor, self._feed.read_steps(
                self.subscription_id, cursor, limit, until))

        frames = await anyio.to_thread.run_sync(read)
        if frames:
            return Page(frames, frames[-1].after)
        # Nothing left before the hub's position (retention deleted it): start there.
        return Page((), until or cursor)


class FanOut:
    """The hubs of one process, one per subscription with streams or polls open."""

    def __init__(self, feed: DeliveryFeed, limiter: anyio.CapacityLimiter, *,
                 buffer: int = STREAM_BUFFER, ring: int = RING,
                 on_fallback: Callable[[str], None] | None = None) -> None:
        """`on_fallback(subscription)` is called each time a stream overflows."""
        self._on_fallback = on_fallback
        self._feed = feed
        self._limiter = limiter
        self._buffer = buffer
        self._ring = ring
        self._hubs: dict[str, Hub] = {}
        self._bell: LoopBell | None = None

    async def hub(self, subscription_id: str) -> Hub:
        """The running hub of `subscription_id`, started on first use."""
        hub = self._hubs.get(subscription_id)
        if hub is None or hub.stopped:
            if self._bell is None:
                self._bell = LoopBell(asyncio.get_running_loop())
            hub = Hub(self._feed, subscription_id, self._limiter, buffer=self._buffer,
                      ring=self._ring, on_fallback=self._on_fallback, bell=self._bell)
            self._hubs[subscription_id] = hub
            hub.start()
        hub.touch()
        await hub.ready()
        return hub

    def fallbacks(self) -> dict[str, int]:
        """Per subscription, how often a stream overflowed its buffer."""
        return {sub: hub.fallbacks for sub, hub in self._hubs.items()}

    async def close(self) -> None:
        hubs, self._hubs = list(self._hubs.values()), {}
        for hub in hubs:
            await hub.stop()
