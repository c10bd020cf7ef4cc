"""Appending records to Kafka for `KafkaEventLog`: one idempotent kafka-python producer.

Every caller hands over a whole batch (the group commit of publishes, a router's batch)
and waits for it, so `RecordWriter.send` flushes when all records are handed to the
producer: they go out at once, in as few requests as they fit, rather than after the
linger. The linger (`linger_ms`) only lets a long batch go out in a few large requests
while it is still being handed over, rather than in many small ones.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass

from kafka import KafkaProducer, TopicPartition
from kafka import errors as kafka_errors
from kafka.producer.future import FutureRecordMetadata

from broker.log.kafka_connection import KafkaConnection, translate_kafka_error
from broker.log.port import AppendResult, NewRecord

log = logging.getLogger(__name__)

_BATCH_BYTES = 512 * 1024
"""A router appends hundreds of audit records and deliveries at once: batches of up to
512 KiB send them in a few requests, not dozens of 16 KiB ones (Kafka's default
message.max.bytes is 1 MiB)."""
_RECORD_OVERHEAD_BYTES = 256
"""More than a record batch's header and a record's own varints take: a record whose
key, value and headers leave less room than this under `max_request_size` gets the
producer's exact size estimate."""


@dataclass(frozen=True, slots=True)
class Placement:
    """A record to send, the Kafka topic it goes to and its partition there."""

    topic: str
    record: NewRecord
    partition: int


@dataclass(frozen=True, slots=True)
class SendFailure:
    """The first kafka-python error a send met, and the Kafka topic it was sending to."""

    topic: str
    error: Exception


class RecordWriter:
    """Sends records with `acks=all` through an idempotent producer."""

    def __init__(self, connection: KafkaConnection, linger_ms: int) -> None:
        self._connection = connection
        self._timeout_s = connection.request_timeout_s + linger_ms / 1000 + 5
        self._tracked: set[str] = set()
        self._tracked_lock = threading.Lock()
        request_timeout_ms = int(connection.request_timeout_s * 1000)
        try:
            self._producer = KafkaProducer(
                acks="all",
                enable_idempotence=True,
                linger_ms=linger_ms,
                max_in_flight_requests_per_connection=5,
                batch_size=_BATCH_BYTES,
                allow_auto_create_topics=False,
                max_block_ms=request_timeout_ms,
                delivery_timeout_ms=request_timeout_ms + linger_ms,
                **connection.client_options(),
            )
        except kafka_errors.KafkaError as exc:
            raise translate_kafka_error(exc, "connect", connection) from exc
        self._max_block_ms = request_timeout_ms
        self._max_request_bytes = int(self._producer.config["max_request_size"])
        accumulator = getattr(self._producer, "_accumulator", None)
        self._accumulator = accumulator if _can_hand(self._producer, accumulator) else None
        if self._accumulator is None:
            log.info("this kafka-python's producer has no record accumulator of kafka-python "
                     "3.0's shape: records are sent one by one through KafkaProducer.send, "
                     "at about a third more CPU per record")

    def send(self, placed: Sequence[Placement]
             ) -> tuple[list[AppendResult], SendFailure | None]:
        """Send `placed` and wait for the acknowledgements, with one flush whatever the
        topics: the results of those acknowledged, in order, and the first kafka-python
        error met, if any (records sent before it are still waited for)."""
        futures: list[tuple[str, FutureRecordMetadata]] = []
        failure: SendFailure | None = None
        topic = ""
        try:
            hand = self._hand if self._accumulator is not None else self._hand_one_by_one
            for topic, records in _by_topic(placed):
                hand(topic, records, futures)
        except kafka_errors.KafkaError as exc:
            failure = SendFailure(topic, exc)
        if futures:
            # Failures show on the futures below.
            with suppress(kafka_errors.KafkaError):
                self._producer.flush(timeout=self._timeout_s)
        results = []
        for topic, future in futures:
            try:
                metadata = future.get(timeout=self._timeout_s)
            except kafka_errors.KafkaError as exc:
                failure = failure or SendFailure(topic, exc)
                continue
            results.append(AppendResult(metadata.partition, metadata.offset))
        return results, failure

    def _hand(self, topic: str, records: Sequence[Placement],
              futures: list[tuple[str, FutureRecordMetadata]]) -> None:
        """Hand one topic's records straight to the producer's record accumulator.

        `KafkaProducer.send` repeats for every record what holds for the whole call
        (the topic's metadata, the partitioner, argument checks, a size estimate) and
        wakes the sending thread at every new batch; on a router that was about a third
        of the producer's cost per record. Here the metadata and partitions are looked
        up once per topic, a record's size is estimated only when it could be near the
        producer's limit, and the sending thread is woken only for a full batch (the
        flush that follows wakes it for the rest)."""
        producer = self._producer
        accumulator = self._accumulator
        assert accumulator is not None
        self._track(topic)
        partitions = producer._metadata.partitions_for_topic(topic)
        if partitions is None:
            partitions = producer._wait_on_metadata(topic, self._max_block_ms)
        now = time.monotonic()
        limit = self._max_request_bytes
        tps: dict[int, TopicPartition] = {}
        for place in records:
            record = place.record
            tp = tps.get(place.partition)
            if tp is None:
                if place.partition not in partitions:
                    raise kafka_errors.UnknownTopicOrPartitionError(
                        f"{topic} has no partition {place.partition}")
                tp = tps[place.partition] = TopicPartition(topic, place.partition)
            headers = list(record.headers)
            key, value = record.key, record.value
            if (len(value) + (len(key) if key is not None else 0)
                    + sum(len(name) * 4 + len(data) + 20 for name, data in headers)
                    + _RECORD_OVERHEAD_BYTES) > limit:
                # Near the limit: the producer's own estimate and error.
                producer._ensure_valid_record_size(
                    producer._estimate_size_in_bytes(key, value, headers))
            future, batch_is_full, _, _ = accumulator.append(
                tp, record.timestamp_ms, key, value, headers, now=now)
            futures.append((topic, future))
            if batch_is_full:
                producer._sender.wakeup()

    def _hand_one_by_one(self, topic: str, records: Sequence[Placement],
                         futures: list[tuple[str, FutureRecordMetadata]]) -> None:
        """`_hand` through the public `KafkaProducer.send`, one record at a time (for a
        kafka-python whose producer does not have the accumulator `_hand` uses)."""
        self._track(topic)
        for place in records:
            record = place.record
            futures.append((topic, self._producer.send(
                topic, value=record.value, key=record.key, headers=list(record.headers),
                partition=place.partition, timestamp_ms=record.timestamp_ms)))

    def close(self, timeout_s: float | None = None) -> None:
        self._producer.close(timeout=self._timeout_s if timeout_s is None else timeout_s)

    def _track(self, kafka_topic: str) -> None:
        """Have the producer keep `kafka_topic`'s metadata, as the Java producer does for
        every topic it sends to.

        kafka-python (3.0) refreshes metadata only for topics it was told to track, and
        tracks a topic only when a send finds it missing from the metadata it has. A
        topic it learnt from its first, all-topics answer is never tracked, so once any
        later topic is, a refresh drops the others' leaders; the producer then finds
        partitions it once wrote to without a leader and asks for metadata in a busy
        loop (an idle API process used a sixth of a core, a router a third, and the
        starved I/O thread logged "blocking the event loop" warnings).
        """
        with self._tracked_lock:
            if kafka_topic in self._tracked:
                return
            self._tracked.add(kafka_topic)
        # The thread-safe path kafka-python itself takes from a sending thread.
        self._producer._sender.add_topic(kafka_topic)


def _by_topic(placed: Sequence[Placement]) -> Iterator[tuple[str, Sequence[Placement]]]:
    """Runs of `placed` going to one topic, in order."""
    for topic, run in itertools.groupby(placed, key=lambda place: place.topic):
        yield topic, list(run)


def _can_hand(producer: KafkaProducer, accumulator: object) -> bool:
    """Whether this kafka-python's producer has what `RecordWriter._hand` uses (kafka-python
    3.0's; tests/integration/log/test_kafka_append.py runs both ways)."""
    append = getattr(accumulator, "append", None)
    if not callable(append):
        return False
    try:
        parameters = list(inspect.signature(append).parameters)
    except (TypeError, ValueError):
        return False
    return (parameters[:6] == ["tp", "timestamp_ms", "key", "value", "headers", "now"]
            and hasattr(producer, "_metadata")
            and all(callable(getattr(producer, name, None)) for name in (
                "_wait_on_metadata", "_ensure_valid_record_size", "_estimate_size_in_bytes"))
            and not producer.config.get("transactional_id"))
