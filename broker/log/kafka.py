"""The event log on Kafka: Apache Kafka, Redpanda, MSK or Tansu, through kafka-python."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from kafka import TopicPartition
from kafka import errors as kafka_errors

from broker.errors import LogError, UnknownTopicError
from broker.log.kafka_admin import KafkaAdmin
from broker.log.kafka_connection import KafkaConnection, check_topic_name, translate_kafka_error
from broker.log.kafka_consumer import KafkaGroupMember
from broker.log.kafka_fetch_wait import FetchWait
from broker.log.kafka_producer import Placement, RecordWriter
from broker.log.kafka_reader import ReaderPool
from broker.log.kafka_tail import PartitionTail
from broker.log.partitioner import Placer
from broker.log.port import (
    AppendResult,
    Consumer,
    LogRecord,
    NewRecord,
    TopicSpec,
)
from broker.log.port import TopicPartition as PortTopicPartition

if TYPE_CHECKING:
    from broker.config import KafkaSettings



class KafkaEventLog:
    """The `EventLog` port on a Kafka-protocol cluster.

    Names: every port topic `name` is the Kafka topic `topic_prefix + name`, and every
    consumer group `group` the Kafka group `topic_prefix + group`, so one cluster can hold
    several Handoff installations and ACLs can grant a prefix. Callers never see the
    prefix.

    Appends: records go to the partition the embedded log would choose (Kafka's murmur2
    of the key; round robin without a key), through an idempotent producer with
    `acks=all`. Every caller hands over a whole batch (the group commit of publishes, a
    router's batch) and waits for it, so `append` sends its records at once when they
    are all handed to the producer (a flush) rather than after a linger; `linger_ms`
    only lets a long append go out in a few large requests rather than many small
    ones. `append` returns when
    the cluster has acknowledged every record; if some fail, it raises and the others
    may still be stored (retrying is at least once).

    Waiting: an append through this object wakes `wait` at once; appends by other
    processes are seen by one thread that follows every partition anyone waits on with
    long-poll fetches (`PartitionTail`): each fetch waits at the broker up to
    `fetch_wait_ms` while records flow, growing to `idle_fetch_wait_ms` when none come.
    Apache Kafka answers a waiting fetch as soon as a record arrives; Tansu 0.6 only when
    the wait is over. The records a fetch brings are kept, so the `read` that follows a
    `wait` needs no round trip of its own; and a `read` at the end of a partition that
    is being followed answers from what the tail knows (at most a fetch wait old) rather
    than asking the cluster for the end, since the wait that follows it wakes when the
    tail sees more.

    Topics: `ensure_topic` creates topics with `cleanup.policy` and `retention.ms`, and
    refuses an existing topic whose partition count or cleanup policy differs (the
    policy is checked when the broker reports it). An existing topic's retention is left
    as the operator set it; a difference is logged.

    Consumer groups are real Kafka groups: members in any number of processes split the
    partitions, and committed offsets live in the cluster.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "handoff.",
        replication_factor: int = 1,
        client_id: str = "handoff",
        security_protocol: str = "PLAINTEXT",
        sasl_mechanism: str | None = None,
        sasl_username: str | None = None,
        sasl_password: str | None = None,
        ssl_cafile: str | None = None,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 30.0,
        linger_ms: int = 5,
        max_poll_records: int = 500,
        fetch_wait_ms: int = 10,
        idle_fetch_wait_ms: int = 250,
    ) -> None:
        if replication_factor < 1:
            raise LogError("kafka.replication_factor must be at least 1")
        self._connection = KafkaConnection(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            security_protocol=security_protocol,
            sasl_mechanism=sasl_mechanism,
            sasl_username=sasl_username,
            sasl_password=sasl_password,
            ssl_cafile=ssl_cafile,
            connect_timeout_s=connect_timeout_s,
            request_timeout_s=request_timeout_s,
        )
        self._prefix = topic_prefix
        self._max_poll_records = max_poll_records
        self._fetch_waits = (fetch_wait_ms, idle_fetch_wait_ms)
        self._admin = KafkaAdmin(self._connection, replication_factor)
        try:
            self._writer = RecordWriter(self._connection, linger_ms)
        except LogError:
            self._admin.close()
            raise
        try:
            self._reader = ReaderPool(self._connection)
        except LogError:
            self._writer.close(timeout_s=0)
            self._admin.close()
            raise
        self._partition_counts: dict[str, int] = {}
        self._placer = Placer()
        self._members: list[KafkaGroupMember] = []
        self._members_lock = threading.Lock()
        # Guards the two below; notified when a known end offset grows (an append through
        # this object, or the watcher seeing one by another process).
        self._appended = threading.Condition()
        self._known_ends: dict[TopicPartition, int] = {}
        self._closed = False
        self._tail = PartitionTail(self._connection, self._note_ends, self._bare_topic,
                                   FetchWait(*self._fetch_waits))

    @classmethod
    def from_settings(cls, settings: KafkaSettings, client_id: str = "handoff") -> KafkaEventLog:
        """Build from the `kafka` section of the settings."""
        return cls(
            settings.bootstrap_servers,
            topic_prefix=settings.topic_prefix,
            replication_factor=settings.replication_factor,
            client_id=client_id,
            security_protocol=settings.security_protocol,
            sasl_mechanism=settings.sasl_mechanism,
            sasl_username=settings.sasl_username,
            sasl_password=(
                settings.sasl_password.get_secret_value() if settings.sasl_password else None
            ),
            ssl_cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None,
            fetch_wait_ms=settings.fetch_wait_ms,
            idle_fetch_wait_ms=settings.idle_fetch_wait_ms,
        )

    def __repr__(self) -> str:
        return (
            f"KafkaEventLog({self._connection.bootstrap_servers!r}, topic_prefix={self._prefix!r})"
        )

    # -- topics ---------------------------------------------------------------------------

    def ensure_topic(self, spec: TopicSpec) -> None:
        """Create the topic if missing; raise `TopicMismatchError` when it exists with
        another partition count or cleanup policy (see the class docstring)."""
        self._check_open()
        if not spec.name:
            raise LogError("a topic needs a name")
        if spec.partitions < 1:
            raise LogError(f"topic {spec.name!r} needs at least one partition")
        self._admin.ensure(self._kafka_topic(spec.name), spec)
        self._partition_counts[spec.name] = spec.partitions

    def topics(self) -> list[str]:
        """Names of this installation's topics (those under the prefix), sorted."""
        self._check_open()
        prefix = self._prefix
        return sorted(
            name[len(prefix) :]
            for name in self._admin.topic_names()
            # Without a prefix every topic is ours, except Kafka's internal ones.
            if name.startswith(prefix) and (prefix or not name.startswith("__"))
        )

    def partitions(self, topic: str) -> int:
        """Number of partitions; raise `UnknownTopicError` for a missing topic."""
        self._check_open()
        count = self._partition_counts.get(topic)
        if count is None:
            count = self._admin.partition_count(self._kafka_topic(topic))
            if count is None:
                raise UnknownTopicError(f"topic {topic!r} does not exist")
            self._partition_counts[topic] = count
        return count

    # -- records --------------------------------------------------------------------------

    def append(self, topic: str, records: Sequence[NewRecord]) -> list[AppendResult]:
        """Append `records`; return when the cluster has acknowledged all of them."""
        return self.append_all(((topic, records),))[0]

    def append_all(self, batches: Sequence[tuple[str, Sequence[NewRecord]]]
                   ) -> list[list[AppendResult]]:
        """Append to several topics with one flush, acknowledged when it returns."""
        placed: list[Placement] = []
        topics = {}
        for topic, records in batches:
            kafka_topic = self._kafka_topic(topic)
            topics[kafka_topic] = topic
            partitions = self._placer.place(topic, records, self.partitions(topic))
            placed += (Placement(kafka_topic, record, partition)
                       for record, partition in zip(records, partitions, strict=True))
        results, failure = self._writer.send(placed) if placed else ([], None)
        if failure is not None:
            topic = topics[failure.topic]
            if isinstance(failure.error, kafka_errors.UnknownTopicOrPartitionError):
                self._partition_counts.pop(topic, None)
            raise translate_kafka_error(
                failure.error, f"append records to {topic!r}", self._connection
            ) from failure.error
        self._note_appended(placed, results)
        ends = list(itertools.accumulate(len(records) for _, records in batches))
        return [results[end - len(records):end]
                for end, (_, records) in zip(ends, batches, strict=True)]

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 500
    ) -> list[LogRecord]:
        """Records of one partition from `offset` on, without waiting for new ones. An
        offset that compaction or retention removed reads from the next surviving record."""
        tp = self._kafka_tp(topic, partition)
        if offset < 0 or max_records < 1:
            raise LogError("read needs an offset of at least 0 and max_records of at least 1")
        followed = self._tail.recent(tp, offset, max_records)
        if followed:
            return followed
        if offset >= self._known_end(tp):
            if self._tail.follows(tp):
                # A waiter's partition: the tail learns of new records within a fetch
                # wait and wakes the waits; no need to ask the cluster for its end.
                return []
            ends = self._reader.end_offsets([tp])
            self._note_ends(ends)
            if offset >= ends[tp]:
                return []
        return self._reader.read(topic, tp, offset, max_records)

    def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next appended record of this partition will get.

        For a partition a consumer group member of this log owns, the end its fetches
        last reported (noted within the last two seconds) or what this process appended since,
        without a request: the owner reads such a partition by polling, so its end is
        only a progress figure there (a router's lag, asked for twice a second for
        every partition it owns, spent a third of its time in these requests)."""
        tp = self._kafka_tp(topic, partition)
        owned = self._member_end((topic, partition))
        if owned is not None:
            return max(owned, self._known_end(tp))
        ends = self._reader.end_offsets([tp])
        self._note_ends(ends)
        return self._known_end(tp)

    def end_offsets(self, topic: str) -> list[int]:
        """`end_offset` of every partition of `topic`, in one request."""
        tps = [self._kafka_tp(topic, p) for p in range(self.partitions(topic))]
        ends = self._reader.end_offsets(tps)
        self._note_ends(ends)
        with self._appended:
            return [max(ends[tp], self._known_ends.get(tp, 0)) for tp in tps]

    def wait(self, positions: Mapping[PortTopicPartition, int], timeout: float) -> bool:
        """Block until some partition has a record at or past its position (True) or
        `timeout` seconds pass (False)."""
        wanted = {self._kafka_tp(topic, p): offset for (topic, p), offset in positions.items()}
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._appended:
            if self._reached(wanted):
                return True
        self._tail.watch(wanted)
        try:
            with self._appended:
                while not self._reached(wanted):
                    if self._closed:
                        raise LogError(f"event log on Kafka at "
                                       f"{self._connection.bootstrap_servers} is closed")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    # Woken by appends through this object and by the watcher.
                    self._appended.wait(remaining)
                return True
        finally:
            self._tail.unwatch(wanted)

    # -- consumer groups ------------------------------------------------------------------

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """Join Kafka consumer group `topic_prefix + group` reading `topics`."""
        if not group:
            raise LogError("a consumer group needs a name")
        if not topics:
            raise LogError(f"consumer group {group!r} needs at least one topic to read")
        for topic in topics:
            self.partitions(topic)
        bare_names = {self._kafka_topic(topic): topic for topic in topics}
        member = KafkaGroupMember(
            self._connection,
            self._prefix + group,
            list(bare_names),
            bare_names,
            self._admin.committed_offset,
            max_poll_records=self._max_poll_records,
            fetch_wait=FetchWait(*self._fetch_waits),
        )
        with self._members_lock:
            self._members = [m for m in self._members if not m.closed]
            self._members.append(member)
        return member

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close every client and group member; later calls raise `LogError`. Closing
        twice does nothing."""
        with self._appended:
            if self._closed:
                return
            self._closed = True
            self._appended.notify_all()  # waiters wake and find the log closed
        self._tail.close()
        with self._members_lock:
            members, self._members = self._members, []
        for member in members:
            member.close()
        self._writer.close()
        self._reader.close()
        self._admin.close()

    # -- internals ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LogError(f"event log on Kafka at {self._connection.bootstrap_servers} is closed")

    def _kafka_topic(self, topic: str) -> str:
        return check_topic_name(self._prefix + topic)

    def _bare_topic(self, kafka_topic: str) -> str:
        return kafka_topic[len(self._prefix):]

    def _kafka_tp(self, topic: str, partition: int) -> TopicPartition:
        partitions = self.partitions(topic)
        if not 0 <= partition < partitions:
            raise UnknownTopicError(
                f"topic {topic!r} has partitions 0 to {partitions - 1}, not {partition}"
            )
        return TopicPartition(self._kafka_topic(topic), partition)

    def _note_appended(self, placed: list[Placement], results: list[AppendResult]) -> None:
        spans: dict[TopicPartition, tuple[int, int]] = {}
        for place, result in zip(placed, results, strict=True):
            tp = TopicPartition(place.topic, result.partition)
            first, end = spans.get(tp, (result.offset, result.offset + 1))
            spans[tp] = (min(first, result.offset), max(end, result.offset + 1))
        ends = {tp: end for tp, (_, end) in spans.items()}
        self._reader.note_appended(spans)
        self._tail.skip(ends)
        with self._appended:
            self._raise_known_ends(ends)
            self._appended.notify_all()

    def _note_ends(self, ends: Mapping[TopicPartition, int]) -> None:
        with self._appended:
            if self._raise_known_ends(ends):
                self._appended.notify_all()

    def _raise_known_ends(self, ends: Mapping[TopicPartition, int]) -> bool:
        # Called with the condition held. Ends only grow, so the largest seen stands.
        raised = False
        for tp, end in ends.items():
            if end > self._known_ends.get(tp, 0):
                self._known_ends[tp] = end
                raised = True
        return raised

    def _member_end(self, tp: PortTopicPartition) -> int | None:
        with self._members_lock:
            members = list(self._members)
        for member in members:
            end = member.known_end(tp)
            if end is not None:
                return end
        return None

    def _known_end(self, tp: TopicPartition) -> int:
        with self._appended:
            return self._known_ends.get(tp, 0)

    def _reached(self, wanted: Mapping[TopicPartition, int]) -> bool:
        # Called with the condition held.
        return any(self._known_ends.get(tp, 0) > offset for tp, offset in wanted.items())
