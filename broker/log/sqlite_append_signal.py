"""Telling waiting readers that records were appended to the embedded log.

Appends through this process wake the waiters of the topics they advanced at once,
through condition variables. Appends by another process on the same database file (the
router process beside the API and delivery, or split roles) ring this process's doorbell
(`broker.log.sqlite_doorbell`), naming the topics that advanced; one watcher thread per
log receives the rings and wakes those topics' waiters. A waiter is woken only by appends
to a topic it waits on (a server-sent-event stream waiting on `deliver.*` sleeps through
publishes to `events.*`).

Rings can be lost, and a foreign writer does not ring: while anyone waits (or, once a
consumer group member relies on announcements to skip topics with nothing new, always),
the watcher also reads SQLite's `PRAGMA data_version` every `safety_poll_s` (it changes
whenever another connection commits, and costs no disk I/O) and wakes every waiter when
it moved.
Without a doorbell (none could be opened, or it is turned off) that poll runs every
`poll_interval_s` instead, as the only way to notice other processes' appends: 2 ms
costs about 2.5% of one core per process that has a waiter (`bench/idle_waiters.py`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path

from broker.log.embedded_group import QuietTopics
from broker.log.port import TopicPartition
from broker.log.sqlite_doorbell import EVERYTHING, Doorbell, open_doorbell
from broker.log.sqlite_storage import advanced_partitions, connect

log = logging.getLogger(__name__)

_ERROR_BACKOFF_S = 0.5
"""How long the watcher pauses after failing to read the database's version."""


class AppendSignal:
    """A counter that goes up on every append, per topic, and a way to sleep until the
    count of some topics moves."""

    def __init__(self, path: Path, poll_interval_s: float, busy_timeout_s: float,
                 doorbell: bool = False, safety_poll_s: float = 0.5) -> None:
        """`doorbell`: ring and listen in the folder `<path>-bell` beside the file."""
        if poll_interval_s <= 0 or safety_poll_s <= 0:
            raise ValueError("the cross-process poll interval must be positive")
        self._path = path
        self._poll_interval_s = poll_interval_s
        self._safety_poll_s = safety_poll_s
        self._lock = threading.Lock()
        self._demand = threading.Condition(self._lock)
        """Notified when the first waiter arrives or the signal closes; the watcher
        sleeps on it while nobody waits and there is no doorbell."""
        # Guarded by the lock:
        self._generation = 0
        self._everything_at = 0
        """The generation of the last announcement that named no topic."""
        self._topic_at: dict[str, int] = {}
        self._waiting: dict[str, set[threading.Condition]] = {}
        self._anyone: set[threading.Condition] = set()
        """Waiters with no topic filter."""
        self._watching: dict[str, dict[object, Callable[[], None]]] = {}
        """Per topic, the callbacks of `watch` (each counts as a waiter while it lasts)."""
        self._waiters = 0
        self._relied_on = False
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
        self._doorbell: Doorbell | None = \
            open_doorbell(path.with_name(path.name + "-bell")) if doorbell else None

    def generation(self) -> int:
        """The current count; pass it to `wait_for_change`."""
        with self._lock:
            return self._generation

    def rely_on_announcements(self) -> None:
        """A reader will skip looking at topics no announcement named (`unannounced`):
        bind the doorbell now, and from now on keep the watcher's poll for appends it
        was not told of going even while nobody waits, so a lost ring or a foreign
        writer is announced within `safety_poll_s` (the poll interval without a
        doorbell). Idempotent."""
        if self._relied_on:
            return
        self.listen()
        with self._lock:
            if self._relied_on or self._closing:
                return
            self._relied_on = True
            self._waiters += 1  # counts as a waiter for good
            if self._waiters == 1:
                self._start_watching()

    def unannounced(self, quiet: Mapping[str, int]) -> set[str]:
        """The topics of `quiet` (topic: a generation) that no announcement has named
        since that generation: as far as this process knows, nothing was appended to
        them since. A lost ring is made up for by the watcher's poll, which announces
        everything."""
        with self._lock:
            everything, topic_at = self._everything_at, self._topic_at
            return {topic for topic, generation in quiet.items()
                    if everything <= generation and topic_at.get(topic, 0) <= generation}

    def announce(self, topics: Iterable[str] | None = None) -> None:
        """Wake the waiters of `topics` (every waiter when None): records were appended
        (or the log is closing)."""
        with self._lock:
            self._generation += 1
            generation = self._generation
            woken: set[threading.Condition] = set(self._anyone)
            if topics is None:
                self._everything_at = generation
                for conditions in self._waiting.values():
                    woken.update(conditions)
            else:
                for topic in topics:
                    self._topic_at[topic] = generation
                    woken.update(self._waiting.get(topic, ()))
            for condition in woken:
                condition.notify()
            if topics is None:
                called = [wake for wakes in self._watching.values() for wake in wakes.values()]
            else:
                called = [wake for topic in topics
                          for wake in self._watching.get(topic, {}).values()]
        for wake in called:
            wake()

    def watch(self, topic: str, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake()` (from the announcing thread, outside the lock) on every
        announcement naming `topic` or no topic, from now on, until the returned function
        is called. The doorbell is bound before this returns, so a reader that looks at
        the log after calling this misses no append made by another process."""
        self.listen()
        token = object()
        with self._lock:
            closing = self._closing
            if not closing:
                self._watching.setdefault(topic, {})[token] = wake
                self._waiters += 1
                if self._waiters == 1:
                    self._start_watching()
        if closing:
            wake()  # closed: let the reader find out
            return lambda: None

        def unwatch() -> None:
            with self._lock:
                wakes = self._watching.get(topic)
                if wakes is None or wakes.pop(token, None) is None:
                    return
                self._waiters -= 1
                if not wakes:
                    del self._watching[topic]

        return unwatch

    def appended(self, topics: Collection[str]) -> None:
        """This process appended to `topics`: wake its waiters and ring the others."""
        self.announce(topics)
        if self._doorbell is not None:
            self._doorbell.ring(topics)

    def wait_for_change(self, generation: int, timeout: float,
                        topics: Collection[str] | None = None) -> bool:
        """Sleep until an append to one of `topics` (any topic when None) is announced
        after `generation` (True), or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        self.listen()
        condition = threading.Condition(self._lock)
        with self._lock:
            if self._closing:
                return True  # closed: let the waiter find out
            if self._moved(generation, topics):
                return True
            self._waiters += 1
            if topics is None:
                self._anyone.add(condition)
            else:
                for topic in topics:
                    self._waiting.setdefault(topic, set()).add(condition)
            if self._waiters == 1:
                self._start_watching()
            try:
                while not self._moved(generation, topics):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    condition.wait(remaining)
                return True
            finally:
                self._waiters -= 1
                self._anyone.discard(condition)
                for topic in topics or ():
                    waiting = self._waiting.get(topic)
                    if waiting is not None:
                        waiting.discard(condition)
                        if not waiting:
                            del self._waiting[topic]

    def close(self) -> None:
        """Stop watching the file and wake every waiter. Idempotent."""
        with self._lock:
            self._closing = True
            self._demand.notify_all()
        if self._doorbell is not None:
            self._doorbell.wake()
        with self._watch_lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()
        if self._doorbell is not None:
            self._doorbell.close()
        self.announce()

    # -- the watcher thread ---------------------------------------------------------------

    def _moved(self, generation: int, topics: Collection[str] | None) -> bool:
        # Called with the lock held.
        if self._closing or self._everything_at > generation:
            return True
        if topics is None:
            return self._generation != generation
        topic_at = self._topic_at
        return any(topic_at.get(topic, 0) > generation for topic in topics)

    def listen(self) -> None:
        """Bind the doorbell before the first wait or the first look a reader means to
        trust announcements about (so no ring sent after it looked at the log is
        missed); without one, poll fast. Idempotent."""
        doorbell = self._doorbell
        if doorbell is None or doorbell.listening:
            return
        with self._watch_lock:
            if doorbell.listening or self._watcher is None:
                return
            try:
                doorbell.listen()
            except OSError as exc:
                log.warning("cannot listen on the embedded log's doorbell (%s); polling "
                            "for other processes' appends every %g ms instead",
                            exc.strerror, self._poll_interval_s * 1000)
                self._doorbell = None
                doorbell.close()

    def _start_watching(self) -> None:
        # Called with the lock held, by the first waiter.
        if self._watch_thread is None:
            self._watch_thread = threading.Thread(
                target=self._watch, name="handoff-log-watch", daemon=True)
            self._watch_thread.start()
        else:
            self._demand.notify_all()

    def _watch(self) -> None:
        next_check = time.monotonic()
        while True:
            doorbell = self._doorbell
            with self._lock:
                while doorbell is None and self._waiters == 0 and not self._closing:
                    self._demand.wait()
                if self._closing:
                    return
            if doorbell is None:
                time.sleep(self._poll_interval_s)
                due = True
            else:
                rings = doorbell.receive(max(0.0, next_check - time.monotonic()))
                if rings:
                    self._ring_received(rings)
                due = time.monotonic() >= next_check
            if not due:
                continue
            next_check = time.monotonic() + self._safety_poll_s
            with self._lock:
                if self._waiters == 0:
                    continue
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

    def _ring_received(self, rings: list[bytes]) -> None:
        topics: set[str] = set()
        for ring in rings:
            if ring == EVERYTHING:
                self.announce()
                return
            topics.update(ring.decode(errors="replace").split("\n"))
        self.announce(topics)

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


def quiet_topics_left_out(signal: AppendSignal, positions: Mapping[TopicPartition, int],
                          quiet: dict[str, int]) -> dict[TopicPartition, int]:
    """`positions` without the topics a reader need not look at again.

    `quiet` is a reader's memory between its looks at the same positions (a consumer
    group member's, between reads): the topics it found with nothing past any of its
    positions, each with the signal's generation taken before that look. A topic no
    announcement named since then has nothing new, as far as this process can know (a
    lost ring is made up for by the watcher's poll, which announces everything)."""
    if not quiet:
        return dict(positions)
    still = signal.unannounced(quiet)
    return {tp: offset for tp, offset in positions.items() if tp[0] not in still}


def remember_quiet_topics(quiet: dict[str, int], asked: Mapping[TopicPartition, int],
                          found: Collection[TopicPartition], generation: int) -> None:
    """After a look at `asked` that found `found` advanced: the topics asked about with
    nothing found are quiet as of `generation`, the others not."""
    busy = {topic for topic, _ in found}
    for topic in {topic for topic, _ in asked}:
        if topic in busy:
            quiet.pop(topic, None)
        else:
            quiet[topic] = generation


def advanced_unless_quiet(db: sqlite3.Connection, signal: AppendSignal,
                          positions: Mapping[TopicPartition, int],
                          quiet: QuietTopics | None) -> list[TopicPartition]:
    """`advanced_partitions` of `positions`, leaving out the topics of `quiet` no
    announcement named since (and remembering in it what this look found)."""
    if quiet is None:
        return advanced_partitions(db, positions)
    signal.rely_on_announcements()
    quiet.looked_at = signal.generation()  # before the query: see `unannounced`
    asked = quiet_topics_left_out(signal, positions, quiet.since)
    found = advanced_partitions(db, asked) if asked else []
    remember_quiet_topics(quiet.since, asked, found, quiet.looked_at)
    return found
