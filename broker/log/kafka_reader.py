"""Reading a partition from an offset, and finding a partition's end, on Kafka.

One kafka-python consumer outside any group does both, behind a lock: kafka-python
consumers are not thread-safe, and every read points the consumer at another partition
and offset (assign, seek, fetch).

End offsets come from the fetch response's high watermark, with ListOffsets only as a
hint for where to fetch. Tansu 0.6 answers ListOffsets(latest) with the base offset of
the partition's last record batch plus one, which is short of the end whenever that batch
holds more than one record. A fetch from just before that hint returns the last batch
and the true high watermark on any broker, and costs no extra wait on Apache Kafka
because a record is there to return. The probe runs only when the hint has moved since
the last probe (both brokers move it on every appended batch), and not when the last
batch is this process's own last append: a hint within that append's offsets says the
end is that append's end, since anyone's later batch would start at or after it.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka import errors as kafka_errors

from broker.errors import LogError, LogUnavailableError
from broker.log.kafka_connection import KafkaConnection, translate_kafka_error
from broker.log.port import LogRecord

_FETCH_WAIT_MS = 1
"""How long the broker may hold a fetch that finds nothing new. Reads ask only for
records known to exist, so a broker-side wait would only delay them: Tansu 0.6 holds
every fetch for its full wait, records or not, so this is the least each read costs
there (it was 10 ms)."""


class PartitionReader:
    """Reads records and end offsets of partitions (Kafka names, prefix included)."""

    def __init__(self, connection: KafkaConnection) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._probed: dict[TopicPartition, tuple[int, int]] = {}
        """Per partition, the last ListOffsets answer and the high watermark behind it."""
        self._tracked: set[str] = set()
        """Topics whose metadata the consumer keeps (see `_move_to`)."""
        self._appended: dict[TopicPartition, tuple[int, int]] = {}
        """Per partition, the first offset and the end of the last append through this
        process (see `end_offsets`); guarded by `_appended_lock`, not held across
        requests, so appends never wait for a read."""
        self._appended_lock = threading.Lock()
        try:
            self._consumer = KafkaConsumer(
                group_id=None,
                enable_auto_commit=False,
                # An offset that retention or compaction removed reads on from the
                # earliest surviving record, as on the embedded log.
                auto_offset_reset="earliest",
                allow_auto_create_topics=False,
                fetch_max_wait_ms=_FETCH_WAIT_MS,
                **connection.client_options(),
            )
        except kafka_errors.KafkaError as exc:
            raise translate_kafka_error(exc, "connect", connection) from exc

    def read(
        self, topic: str, tp: TopicPartition, offset: int, max_records: int
    ) -> list[LogRecord]:
        """Records of `tp` from `offset` on, up to `max_records`, named `topic`.

        The caller has checked that the partition holds a record at or after `offset`.
        """
        deadline = time.monotonic() + self._connection.request_timeout_s
        try:
            with self._lock:
                self._move_to(tp, offset)
                while time.monotonic() < deadline:
                    fetched = self._consumer.poll(timeout_ms=200, max_records=max_records)
                    records = [
                        to_log_record(r, topic) for r in fetched.get(tp, []) if r.offset >= offset
                    ]
                    if records:
                        return records
        except kafka_errors.KafkaError as exc:
            raise translate_kafka_error(exc, "read records", self._connection) from exc
        raise LogUnavailableError(
            f"Kafka at {self._connection.bootstrap_servers} returned no records of "
            f"{tp.topic}/{tp.partition} from offset {offset} within "
            f"{self._connection.request_timeout_s:g} s; check the brokers' health"
        )

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset the next record of each partition will get."""
        wanted = list(tps)
        by_topic: dict[str, list[TopicPartition]] = {}
        for tp in wanted:
            by_topic.setdefault(tp.topic, []).append(tp)
        try:
            with self._lock:
                # One request per topic: Tansu 0.6 answers a ListOffsets request only for
                # its first topic, and kafka-python then fails on the missing answers.
                listed: dict[TopicPartition, int] = {}
                for group in by_topic.values():
                    listed.update(self._consumer.end_offsets(group))
                ends = {}
                for tp in wanted:
                    hint = int(listed.get(tp) or 0)
                    probed = self._probed.get(tp)
                    with self._appended_lock:
                        first, end = self._appended.get(tp, (0, 0))
                    if hint == 0:
                        ends[tp] = 0
                    elif first < hint <= end:
                        # The last batch is this process's own last append (a later one
                        # by anyone would start at or after its end): its end is known.
                        ends[tp] = end
                    elif probed is not None and probed[0] == hint:
                        ends[tp] = probed[1]
                    else:
                        ends[tp] = self._high_watermark(tp, hint)
                        self._probed[tp] = (hint, ends[tp])
                return ends
        except kafka_errors.KafkaError as exc:
            raise translate_kafka_error(exc, "read end offsets", self._connection) from exc
        except KeyError as exc:
            # kafka-python looks up an answer for every partition asked about.
            raise LogUnavailableError(
                f"Kafka at {self._connection.bootstrap_servers} left the end offset of "
                f"{exc.args[0]} unanswered; try again"
            ) from exc

    def note_appended(self, spans: Mapping[TopicPartition, tuple[int, int]]) -> None:
        """Remember the first offset and the end of an append through this process, per
        partition."""
        with self._appended_lock:
            for tp, (first, end) in spans.items():
                if end > self._appended.get(tp, (0, 0))[1]:
                    self._appended[tp] = (first, end)

    def close(self) -> None:
        """Close the consumer."""
        with self._lock:
            self._consumer.close(autocommit=False)

    def _move_to(self, tp: TopicPartition, offset: int) -> None:
        # Called with the lock held. A read that continues where the last one stopped
        # keeps the records kafka-python already fetched; a seek would drop them.
        if self._consumer.assignment() != {tp}:
            if tp.topic not in self._tracked:
                # kafka-python's `assign` makes the consumer keep metadata for the
                # assigned topics alone, unless it tracks them already: the next end
                # offset or read of another topic then first waited for a metadata
                # refresh (up to 100 ms). Tracked once, a topic stays tracked.
                self._consumer._cluster.add_topic(tp.topic)
                self._tracked.add(tp.topic)
            self._consumer.assign([tp])
        elif self._consumer.position(tp) == offset:
            return
        self._consumer.seek(tp, offset)

    def _high_watermark(self, tp: TopicPartition, hint: int) -> int:
        # Called with the lock held.
        self._move_to(tp, hint - 1)
        deadline = time.monotonic() + self._connection.request_timeout_s
        end = hint
        while time.monotonic() < deadline:
            # One record is enough: the fetch response carries the high watermark, and
            # decoding a whole batch of a busy topic would cost more than the round trip.
            fetched = self._consumer.poll(timeout_ms=200, max_records=1)
            records = fetched.get(tp, [])
            if records:
                end = max(end, records[-1].offset + 1)
                break
            if self._consumer.position(tp) != hint - 1:
                break  # the record before the hint is gone (retention): the hint stands
        high_watermark = self._consumer.highwater(tp)
        if high_watermark is not None:
            end = max(end, int(high_watermark))
        if end < hint:
            raise LogError(f"Kafka reported inconsistent end offsets for {tp.topic}/{tp.partition}")
        return end


class ReaderPool:
    """Several `PartitionReader`s, so that one process's reads do not queue behind each
    other: before, a delivery process streaming several subscriptions, the idempotency
    index catching up and every end-offset query all waited for one consumer.

    Reads go to one of `size` readers chosen by topic, so the streams of different
    subscriptions and the catch-up of different indexes proceed side by side, and
    consecutive reads of a partition continue on the consumer that fetched it. End
    offsets have a reader of their own.
    """

    def __init__(self, connection: KafkaConnection, size: int = 4) -> None:
        readers: list[PartitionReader] = []
        try:
            for _ in range(size + 1):
                readers.append(PartitionReader(connection))
        except LogError:
            for reader in readers:
                reader.close()
            raise
        self._ends, *self._readers = readers

    def read(
        self, topic: str, tp: TopicPartition, offset: int, max_records: int
    ) -> list[LogRecord]:
        """See `PartitionReader.read`."""
        return self._reader_for(tp).read(topic, tp, offset, max_records)

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """See `PartitionReader.end_offsets`."""
        return self._ends.end_offsets(tps)

    def note_appended(self, spans: Mapping[TopicPartition, tuple[int, int]]) -> None:
        """See `PartitionReader.note_appended`."""
        self._ends.note_appended(spans)

    def close(self) -> None:
        """Close every reader."""
        for reader in (self._ends, *self._readers):
            reader.close()

    def _reader_for(self, tp: TopicPartition) -> PartitionReader:
        return self._readers[zlib.crc32(tp.topic.encode()) % len(self._readers)]


def to_log_record(record: Any, topic: str) -> LogRecord:
    """A kafka-python `ConsumerRecord` as a port `LogRecord` named `topic`.

    Handoff never writes null values or null header values; should another producer
    have written one, it reads as empty bytes.
    """
    return LogRecord(
        topic=topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=b"" if record.value is None else record.value,
        headers=tuple((name, b"" if value is None else value) for name, value in record.headers),
        timestamp_ms=record.timestamp,
    )
