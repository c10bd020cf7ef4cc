"""A member of a Kafka consumer group, as the event-log `Consumer` port.

Why a background thread: a kafka-python consumer makes progress in a group rebalance only
while someone is inside its `poll`. kafka-python 3.0 keeps a JoinGroup in flight across
`poll` calls (Tansu holds a join for about 3 s), but when the answer lands between two
calls, the next call starts the join over: a router that polls between pieces of work
needs many rounds to join. So each member has a thread that stays in `poll` and hands
records over through a bounded buffer; the caller's `poll` takes from that buffer.

What Kafka's `max.poll.interval.ms` protects is kept: the thread stops polling when the
caller has not called `poll` for `max_poll_interval_s`, and kafka-python then leaves the
group so a stuck member's partitions move to the others.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka import errors as kafka_errors

from broker.errors import BrokerError, LogError, LogUnavailableError
from broker.log import kafka_commits as commits
from broker.log.kafka_connection import KafkaConnection, translate_kafka_error
from broker.log.kafka_fetch_wait import FetchWait, set_fetch_wait
from broker.log.kafka_reader import to_log_record
from broker.log.kafka_rebalances import RebalanceCallbacks
from broker.log.port import LogRecord
from broker.log.port import TopicPartition as PortTopicPartition

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000
"""A member that dies is noticed within the session timeout; heartbeats every second
tell live members of a rebalance within a second."""

_POLL_SLICE_MS = 20
"""Longest the background thread holds the consumer while records flow, and so delays a
commit (a commit waiting for the consumer also keeps the thread from taking it again
first). When nothing comes, it holds it as long as a fetch waits (no commits come then)."""
_PROCESSING_PAUSE_S = 1.0
"""While the caller works on records it was handed, until it commits or polls again, the
background thread leaves the consumer alone (the next fetch is already in flight), so
the commit does not wait for a poll slice; for at most this long, so a slow caller does
not stall a rebalance."""
_SETTLE_WAIT_S = 15.0
"""How long `commit` waits for a member that is joining or rebalancing to own partitions."""
_ERROR_BACKOFF_S = 0.5
_ENDS_EVERY_S = 0.1  # how often the thread notes the high watermarks its fetches brought
ENDS_FRESH_S = 2.0   # `known_end` answers while those were noted this recently


class KafkaGroupMember:
    """A member of a Kafka consumer group reading port topics (the `Consumer` port).

    `group` and `topics` are Kafka names; `bare_name` turns a Kafka topic name back into
    the port's; `committed_offset` looks up a group's committed offset.

    Offsets are committed by `commit`, synchronously and exactly as given, or by
    `commit_later` without waiting (`broker.log.kafka_commits`); a member never commits
    for a partition the group has moved to another member. Delivery is at least once:
    records handed out but not committed before a rebalance are read again by the
    partition's next owner.
    """

    def __init__(
        self,
        connection: KafkaConnection,
        group: str,
        topics: Sequence[str],
        bare_name: dict[str, str],
        committed_offset: Callable[[str, TopicPartition], int | None],
        max_poll_records: int = 500,
        max_poll_interval_s: float = 300.0,
        fetch_wait: FetchWait | None = None,
    ) -> None:
        self.group = group
        self._connection = connection
        self._committed_offset = committed_offset
        self._bare_name = dict(bare_name)
        self._kafka_names = {bare: kafka_topic for kafka_topic, bare in bare_name.items()}
        self._buffer_limit = max_poll_records
        self._max_poll_interval_s = max_poll_interval_s
        self._fetch_wait = fetch_wait or FetchWait(busy_ms=10, idle_ms=250)
        self._consumer_lock = threading.Lock()
        self._state = threading.Condition()
        # Guarded by _state:
        self._buffer: deque[LogRecord] = deque()
        self._owned: set[PortTopicPartition] = set()
        self._settled = False
        self._failure: BrokerError | None = None
        self._closed = False
        self._last_caller_poll = time.monotonic()
        self._commits_waiting = 0
        self._handed_out_at: float | None = None
        """When the caller was last handed records it has not committed or polled past."""
        self._committed_here: dict[PortTopicPartition, int | None] = {}
        """The group's committed offsets of partitions this member owns, as it committed
        them or looked them up since it got them: only the owner commits."""
        self._rebalances = 0
        self._ends: dict[PortTopicPartition, int] = {}  # owned partitions' high watermarks
        self._ends_at = float("-inf")                  # when noted (monotonic)
        self._later = commits.LaterCommits(self._later_ended)
        try:
            self._consumer = KafkaConsumer(
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                allow_auto_create_topics=False,
                session_timeout_ms=SESSION_TIMEOUT_MS,
                heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
                max_poll_records=max_poll_records,
                max_poll_interval_ms=int(max_poll_interval_s * 1000),
                # Not kafka-python's 500 ms: on a broker that holds every fetch for
                # its full wait (Tansu), that is the latency of every routed event.
                fetch_max_wait_ms=self._fetch_wait.current_ms,
                **connection.client_options(),
            )
            self._consumer.subscribe(topics=list(topics),
                                     listener=RebalanceCallbacks(self._revoked, self._assigned))
        except kafka_errors.KafkaError as exc:
            raise translate_kafka_error(exc, f"join consumer group {group!r}", connection) from exc
        self._driver = threading.Thread(
            target=self._drive, name=f"kafka-member-{group}", daemon=True
        )
        self._driver.start()

    # -- the Consumer port ----------------------------------------------------------------

    def poll(self, timeout: float, max_records: int = 500) -> list[LogRecord]:
        """The next records of the owned partitions, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._state:
            self._check_open()
            self._last_caller_poll = time.monotonic()
            if self._handed_out_at is not None:
                self._handed_out_at = None
                self._state.notify_all()
            while not self._buffer and self._failure is None and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._state.wait(remaining)
            self._check_open()
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            count = min(max(max_records, 1), len(self._buffer))
            self._handed_out_at = time.monotonic()
            return [self._buffer.popleft() for _ in range(count)]

    def commit(self, offsets: Mapping[PortTopicPartition, int]) -> None:
        """Commit exactly `offsets` (next offset to read per partition), synchronously,
        with what `commit_later` was given and is not known to be stored yet.

        Raises `LogUnavailableError` (retriable) when the group has moved one of the
        partitions to another member or is rebalancing: poll again, and the records
        will be delivered again to whoever owns them now.
        """
        if not offsets:
            return
        commits.check_offsets(offsets)
        self._wait_until_settled()
        with self._state:
            self._commits_waiting += 1
        try:
            # Holding the consumer lock, the background thread cannot complete a
            # rebalance between the check and the commit.
            with self._consumer_lock:
                owned = self.assignment()
                self._check_open()
                if lost := set(offsets) - owned:
                    raise commits.moved_away(self.group, lost)
                offsets = self._later.unsettled(owned, offsets)
                with self._state:
                    # Unknown until the commit is acknowledged: a failed one may or may
                    # not have been stored.
                    for tp in offsets:
                        self._committed_here.pop(tp, None)
                try:
                    commits.commit_sync(self._consumer, self._kafka_offsets(offsets), self.group,
                                self._connection)
                finally:
                    self._later.done(offsets)
                with self._state:
                    self._committed_here.update(offsets)
        finally:
            with self._state:
                self._commits_waiting -= 1
                self._handed_out_at = None
                self._state.notify_all()

    def commit_later(self, offsets: Mapping[PortTopicPartition, int]) -> None:
        """Have `offsets` committed without waiting: the background thread sends them
        before its next fetch; `commit` and `close` commit them too. Offsets of a
        partition the group moves to another member first are never committed (its next
        owner reads those records again)."""
        commits.check_offsets(offsets)
        self._later.add(offsets)
        with self._state:
            self._check_open()
            self._handed_out_at = None   # the caller is done with them: fetch again
            self._state.notify_all()

    def committed(self, tp: PortTopicPartition) -> int | None:
        """The group's committed offset for `tp`, or None if it never committed."""
        with self._state:
            self._check_open()
            # For a partition it owns, the group's committed offset changes only by this
            # member's commits (no one else commits it), so it is asked for once.
            if tp in self._owned and tp in self._committed_here:
                return self._committed_here[tp]
            rebalances = self._rebalances
        topic, partition = tp
        committed = self._committed_offset(
            self.group, TopicPartition(self._kafka_name(topic), partition)
        )
        with self._state:
            if (tp in self._owned and self._rebalances == rebalances
                    and tp not in self._committed_here):
                self._committed_here[tp] = committed
        return committed

    def known_end(self, tp: PortTopicPartition) -> int | None:
        """The end of an owned partition as this member's fetches last reported it (each
        fetch response carries it), if noted within `ENDS_FRESH_S`; else None."""
        with self._state:
            stale = time.monotonic() - self._ends_at > ENDS_FRESH_S
            return None if stale or self._closed or tp not in self._owned else self._ends.get(tp)

    def assignment(self) -> set[PortTopicPartition]:
        """The partitions this member owns now."""
        with self._state:
            return set(self._owned)

    def close(self) -> None:
        """Leave the group; its partitions go to the remaining members."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            owned, self._owned = self._owned, set()
            self._buffer.clear()
            self._state.notify_all()
        self._driver.join()
        with self._consumer_lock:
            # What `commit_later` was given and is not known to be stored; if this
            # fails, the partitions' next owner reads those records again.
            if unsettled := self._later.unsettled(owned):
                with suppress(kafka_errors.KafkaError):
                    self._consumer.commit(self._kafka_offsets(unsettled))
            # Leaving is a courtesy: if the broker is gone, the session timeout removes
            # this member anyway.
            with suppress(kafka_errors.KafkaError):
                self._consumer.close(autocommit=False)

    @property
    def closed(self) -> bool:
        """Whether `close` has been called."""
        with self._state:
            return self._closed

    # -- the background thread ------------------------------------------------------------

    def _drive(self) -> None:
        while True:
            with self._state:
                while not self._closed and (self._commits_waiting or self._processing()):
                    self._state.wait(_POLL_SLICE_MS / 1000)
                if self._closed:
                    return
                idle = time.monotonic() - self._last_caller_poll > self._max_poll_interval_s
                room = self._buffer_limit - len(self._buffer)
            if idle:
                time.sleep(_POLL_SLICE_MS / 1000)
                continue
            wait_ms = self._fetch_wait.current_ms
            try:
                with self._consumer_lock:
                    self._later.send(self._consumer, self.assignment(), self._kafka_offsets)
                    self._pause_when_full(room)
                    set_fetch_wait(self._consumer, wait_ms)
                    fetched = self._consumer.poll(timeout_ms=max(_POLL_SLICE_MS, wait_ms),
                                                  max_records=max(room, 1))
            except kafka_errors.KafkaError as exc:
                with self._state:
                    self._failure = translate_kafka_error(exc, "poll records", self._connection)
                    self._state.notify_all()
                time.sleep(_ERROR_BACKOFF_S)
                continue
            self._fetch_wait.note(bool(fetched))
            if fetched:
                self._hand_over(fetched)
            if room > 0 and time.monotonic() - self._ends_at >= _ENDS_EVERY_S:
                self._note_ends()

    def _later_ended(self, offsets: Mapping[PortTopicPartition, int],
                     refusal: Exception | None) -> None:
        # From a poll of the background thread: `commit_later`'s offsets stored, or
        # refused for good (raised by the caller's next poll).
        with self._state:
            if refusal is None:
                self._committed_here.update(
                    (tp, offset) for tp, offset in offsets.items() if tp in self._owned)
            else:
                self._failure = translate_kafka_error(refusal, "commit", self._connection)
                self._state.notify_all()

    def _note_ends(self) -> None:
        # By the background thread, after a poll that fetched (a paused one's would not).
        with self._consumer_lock:
            marks = {tp: self._consumer.highwater(tp) for tp in self._consumer.assignment()}
        ends = {self._port_tp(tp): int(mark) for tp, mark in marks.items() if mark is not None}
        with self._state:
            self._ends = ends
            self._ends_at = time.monotonic()

    def _processing(self) -> bool:
        # Called with the state held.
        return (self._handed_out_at is not None
                and time.monotonic() - self._handed_out_at < _PROCESSING_PAUSE_S)

    def _pause_when_full(self, room: int) -> None:
        # Called with the consumer lock held. A paused member still takes part in
        # rebalances; it just fetches nothing until the caller catches up.
        assigned = self._consumer.assignment()
        if room <= 0:
            self._consumer.pause(*assigned)
        elif self._consumer.paused():
            self._consumer.resume(*self._consumer.paused())

    def _hand_over(self, fetched: Mapping[TopicPartition, list[object]]) -> None:
        with self._state:
            for kafka_tp, records in fetched.items():
                topic = self._bare_name.get(kafka_tp.topic)
                if topic is None or (topic, kafka_tp.partition) not in self._owned:
                    continue
                self._buffer.extend(to_log_record(record, topic) for record in records)
            self._state.notify_all()

    # -- rebalances (called by kafka-python, possibly on its own thread) ------------------

    def _revoked(self, partitions: set[TopicPartition]) -> None:
        lost = {self._port_tp(tp) for tp in partitions}
        with self._state:
            self._rebalances += 1
            self._settled = False
            self._owned -= lost
            for tp in lost:
                self._committed_here.pop(tp, None)
                self._ends.pop(tp, None)
            self._later.forget(lost)
            self._buffer = deque(r for r in self._buffer if (r.topic, r.partition) not in lost)
            self._state.notify_all()

    def _assigned(self, partitions: set[TopicPartition]) -> None:
        with self._state:
            if self._closed:
                return
            self._rebalances += 1
            self._owned |= {self._port_tp(tp) for tp in partitions}
            self._settled = True
            self._state.notify_all()

    # -- internals ------------------------------------------------------------------------

    def _wait_until_settled(self) -> None:
        deadline = time.monotonic() + _SETTLE_WAIT_S
        with self._state:
            while not self._settled and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LogUnavailableError(
                        f"this member of consumer group {self.group!r} has no partitions yet "
                        f"after {_SETTLE_WAIT_S:g} s (joining or rebalancing); poll again, "
                        "and check the brokers if this persists"
                    )
                self._state.wait(remaining)
            self._check_open()

    def _check_open(self) -> None:
        if self._closed:
            raise LogError(f"this member of consumer group {self.group!r} is closed")

    def _kafka_offsets(self, offsets: Mapping[PortTopicPartition, int]
                       ) -> dict[TopicPartition, OffsetAndMetadata]:
        return commits.to_kafka(offsets, self._kafka_name)

    def _kafka_name(self, topic: str) -> str:
        kafka_topic = self._kafka_names.get(topic)
        if kafka_topic is None:
            raise LogError(f"this member of consumer group {self.group!r} does not read {topic!r}")
        return kafka_topic

    def _port_tp(self, tp: TopicPartition) -> PortTopicPartition:
        return (self._bare_name.get(tp.topic, tp.topic), tp.partition)
