"""Appending records to Kafka for `KafkaEventLog`: one idempotent kafka-python producer.

Every caller hands over a whole batch (the group commit of publishes, a router's batch)
and waits for it, so `RecordWriter.send` flushes when all records are handed to the
producer: they go out at once, in as few requests as they fit, rather than after the
linger. The linger (`linger_ms`) only lets a long batch go out in a few large requests
while it is still being handed over, rather than in many small ones.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka import errors as kafka_errors

from broker.log.kafka_connection import KafkaConnection, translate_kafka_error
from broker.log.port import AppendResult, NewRecord

_BATCH_BYTES = 512 * 1024
"""A router appends hundreds of audit records and deliveries at once: batches of up to
512 KiB send them in a few requests, not dozens of 16 KiB ones (Kafka's default
message.max.bytes is 1 MiB)."""


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

    def send(self, placed: Sequence[Placement]
             ) -> tuple[list[AppendResult], SendFailure | None]:
        """Send `placed` and wait for the acknowledgements, with one flush whatever the
        topics: the results of those acknowledged, in order, and the first kafka-python
        error met, if any (records sent before it are still waited for)."""
        futures = []
        failure: SendFailure | None = None
        try:
            for place in placed:
                self._track(place.topic)
                record = place.record
                futures.append((place.topic, self._producer.send(
                    place.topic, value=record.value, key=record.key,
                    headers=list(record.headers), partition=place.partition,
                    timestamp_ms=record.timestamp_ms)))
        except kafka_errors.KafkaError as exc:
            failure = SendFailure(place.topic, exc)
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
