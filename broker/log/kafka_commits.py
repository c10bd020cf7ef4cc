"""Offsets a Kafka group member commits without its caller waiting (`commit_later`).

A router commits its ingress offsets after every batch. A synchronous commit waits for
the member's fetch already in flight on the same connection (a broker answers one
connection's requests in order, and Tansu holds a fetch for its whole wait), so each
batch paid that wait before the next poll. `LaterCommits` keeps the offsets handed over
until the member's background thread sends them (`commit_async`, between two fetches)
and until the group coordinator acknowledges them; what is still unacknowledged when the
member closes is committed synchronously then.

Nothing is lost by a commit that never lands: the partition's next owner (or this
process, restarted) reads those records again, at least once, as after a crash between
appending a batch's output and committing it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from functools import partial

from kafka import KafkaConsumer, OffsetAndMetadata
from kafka import TopicPartition as KafkaTopicPartition
from kafka import errors as kafka_errors

from broker.errors import LogError, LogUnavailableError
from broker.log.kafka_connection import KafkaConnection, translate_kafka_error
from broker.log.port import TopicPartition

Ended = Callable[[Mapping[TopicPartition, int], Exception | None], None]
ToKafka = Callable[[Mapping[TopicPartition, int]], dict[KafkaTopicPartition, OffsetAndMetadata]]


def commit_sync(consumer: KafkaConsumer,
                offsets: Mapping[KafkaTopicPartition, OffsetAndMetadata], group: str,
                connection: KafkaConnection) -> None:
    """`consumer.commit(offsets)`, raising the port's errors."""
    try:
        consumer.commit(dict(offsets))
    except (kafka_errors.CommitFailedError, kafka_errors.RebalanceInProgressError) as exc:
        raise LogUnavailableError(
            f"consumer group {group!r} is rebalancing, so the commit was refused; "
            "poll again and commit what you process after that"
        ) from exc
    except kafka_errors.KafkaError as exc:
        raise translate_kafka_error(exc, "commit offsets", connection) from exc


def to_kafka(offsets: Mapping[TopicPartition, int], kafka_name: Callable[[str], str]
             ) -> dict[KafkaTopicPartition, OffsetAndMetadata]:
    """`offsets` of port partitions as kafka-python's, with `kafka_name` of each topic."""
    return {KafkaTopicPartition(kafka_name(topic), partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in offsets.items()}


def moved_away(group: str, lost: set[TopicPartition]) -> LogUnavailableError:
    """The error for a commit of partitions the group moved to another member."""
    named = ", ".join(f"{topic}/{partition}" for topic, partition in sorted(lost))
    return LogUnavailableError(
        f"consumer group {group!r} moved {named} to another member; not committing them. "
        "Poll again: their records go to the new owner")


def check_offsets(offsets: Mapping[TopicPartition, int]) -> None:
    """Raise `LogError` for a negative offset."""
    for (topic, partition), offset in offsets.items():
        if offset < 0:
            raise LogError(f"a committed offset cannot be negative ({topic}/{partition})")


class LaterCommits:
    """Offsets handed over to commit (`waiting`) and sent but not acknowledged
    (`sent`), per partition, the highest of each. Thread-safe. `ended` is called with
    the offsets of a send once they are stored (and None), or refused in a way not worth
    retrying (and the error); offsets refused because the group rebalanced are dropped,
    those refused by a retriable error wait again."""

    def __init__(self, ended: Ended) -> None:
        self._ended_cb = ended
        self._lock = threading.Lock()
        self._waiting: dict[TopicPartition, int] = {}
        self._sent: dict[TopicPartition, int] = {}
        self._highest: dict[TopicPartition, int] = {}   # sent or committed, ever

    def add(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Hand `offsets` over; a later offset of a partition replaces an earlier one,
        and one not past what was already sent or committed is dropped (a committed
        position never goes back)."""
        with self._lock:
            for tp, offset in offsets.items():
                if offset > max(self._waiting.get(tp, -1), self._highest.get(tp, -1)):
                    self._waiting[tp] = offset

    def _raise_highest(self, offsets: Mapping[TopicPartition, int]) -> None:
        # Called with the lock held.
        for tp, offset in offsets.items():
            if offset > self._highest.get(tp, -1):
                self._highest[tp] = offset

    def take(self, owned: set[TopicPartition]) -> dict[TopicPartition, int]:
        """The waiting offsets of partitions in `owned`, now counted as sent; those of
        partitions not owned any more are dropped (their next owner reads them again)."""
        with self._lock:
            waiting, self._waiting = self._waiting, {}
            taken = {tp: offset for tp, offset in waiting.items() if tp in owned}
            self._sent.update(taken)
            self._raise_highest(taken)
            return taken

    def done(self, offsets: Mapping[TopicPartition, int]) -> None:
        """A send of `offsets` ended: stored, or refused for good."""
        with self._lock:
            for tp, offset in offsets.items():
                if self._sent.get(tp) == offset:
                    del self._sent[tp]

    def retry(self, offsets: Mapping[TopicPartition, int]) -> None:
        """A send of `offsets` failed in a way worth trying again: wait again, unless a
        later offset of the partition already waits."""
        with self._lock:
            for tp, offset in offsets.items():
                if self._sent.get(tp) == offset:
                    del self._sent[tp]
                if offset > self._waiting.get(tp, -1):
                    self._waiting[tp] = offset

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop what waits or is unacknowledged for `tps` (sent and refused, or their
        partitions moved to another member)."""
        with self._lock:
            for tp in tps:
                self._waiting.pop(tp, None)
                self._sent.pop(tp, None)
                self._highest.pop(tp, None)

    def unsettled(self, owned: set[TopicPartition],
                  given: Mapping[TopicPartition, int] | None = None
                  ) -> dict[TopicPartition, int]:
        """For a synchronous commit: every offset of a partition in `owned` that waits
        or is unacknowledged (the highest per partition), overridden by `given`, now
        counted as sent."""
        with self._lock:
            merged = dict(self._sent)
            for tp, offset in self._waiting.items():
                if offset > merged.get(tp, -1):
                    merged[tp] = offset
            self._waiting = {}
            taken = {tp: offset for tp, offset in merged.items() if tp in owned}
            taken.update(given or {})
            self._sent = dict(taken)
            self._raise_highest(taken)
            return taken

    def send(self, consumer: KafkaConsumer, owned: set[TopicPartition],
             to_kafka: ToKafka) -> None:
        """Send the waiting offsets of `owned` partitions with `commit_async`: by the
        thread that polls `consumer`, holding it, between two polls (no rebalance
        completes meanwhile). A later poll of `consumer` reports how the send ended."""
        offsets = self.take(owned)
        if not offsets:
            return
        try:
            consumer.commit_async(to_kafka(offsets), callback=partial(self._ended, offsets))
        except kafka_errors.KafkaError:
            self.retry(offsets)
            raise

    def _ended(self, offsets: Mapping[TopicPartition, int], _kafka: object,
               response: object) -> None:
        if not isinstance(response, Exception):
            self.done(offsets)
            self._ended_cb(offsets, None)
        elif isinstance(response, (kafka_errors.CommitFailedError,
                                   kafka_errors.RebalanceInProgressError)):
            self.done(offsets)   # the group moved on: the owners read these records again
        elif isinstance(response, kafka_errors.KafkaError) and response.retriable:
            self.retry(offsets)  # sent again before the next fetch
        else:
            self.done(offsets)
            self._ended_cb(offsets, response)
