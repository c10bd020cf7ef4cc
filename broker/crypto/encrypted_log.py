"""Encryption at rest as a decorator over any `EventLog`.

`EncryptedEventLog(inner, keyring)` seals the value of every record appended to a
protected topic (`events.*`, `deliver.*`, `quarantine.*`, `deadletter.*` and `_linkage` by
default) with AES-GCM under the topic's data key for the current period, and opens it
again on `read` and on a consumer's `poll`. Keys, headers and timestamps stay readable:
the broker needs them to partition, route and de-duplicate. Headers and the record key
are authenticated with the value, so they cannot be altered unnoticed. The data key's
id travels in the `handoff.data_key` header, which readers of this class never see.

A record that cannot be opened is skipped, never raised: its data key was shredded by
retention (the intended outcome), is missing, or the record was altered. Each skip is
counted in `handoff_records_unreadable_total{topic, reason}`, and logged once per data
key. `read` keeps looking past skipped records, and `wait` does not report a partition
whose only new records are unreadable, so pollers neither stall nor spin.

Records stored before encryption was enabled carry no data-key header and are returned
as they are.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from broker.crypto.errors import DataKeyUnavailableError
from broker.crypto.keyring import DataKeyring, DataKeyShreddedError
from broker.crypto.records import SealedRecordError, associated_data, open_sealed, seal
from broker.errors import LogError
from broker.log.port import (
    AppendCommitting,
    AppendingUnlessBusy,
    AppendResult,
    AppendWatching,
    CommittingLater,
    Consumer,
    EventLog,
    LogRecord,
    NewRecord,
    TopicPartition,
    TopicSpec,
)

log = logging.getLogger("handoff.encryption")

H_DATA_KEY = "handoff.data_key"
DEFAULT_TOPICS = ("events.*", "deliver.*", "quarantine.*", "deadletter.*", "_linkage")
_SCAN_CHUNK = 50
_LOGGED_KEYS_MAX = 10_000


@runtime_checkable
class _RetainingLog(Protocol):
    def enforce_retention(self, now_ms: int) -> int: ...


@runtime_checkable
class _CompactingLog(Protocol):
    def compact(self, topic: str) -> int: ...


class EncryptedEventLog:
    """An `EventLog` that encrypts the values of protected topics (module docstring)."""

    def __init__(self, inner: EventLog, keyring: DataKeyring,
                 topics: Sequence[str] = DEFAULT_TOPICS) -> None:
        self._inner = inner
        self._keyring = keyring
        self._patterns = tuple(topics)
        self._protected: dict[str, bool] = {}
        self._unreadable: Counter[tuple[str, str]] = Counter()
        self._logged_keys: set[str] = set()

    def __repr__(self) -> str:
        return f"EncryptedEventLog({self._inner!r}, kek={self._keyring.kek_id})"

    @property
    def inner(self) -> EventLog:
        """The log the sealed records are stored in."""
        return self._inner

    @property
    def keyring(self) -> DataKeyring:
        return self._keyring

    def protects(self, topic: str) -> bool:
        """Whether values of `topic` are encrypted."""
        hit = self._protected.get(topic)
        if hit is None:
            hit = self._protected[topic] = any(
                fnmatch.fnmatchcase(topic, p) for p in self._patterns)
        return hit

    # -- the port -------------------------------------------------------------------------

    def ensure_topic(self, spec: TopicSpec) -> None:
        self._inner.ensure_topic(spec)

    def topics(self) -> list[str]:
        return self._inner.topics()

    def partitions(self, topic: str) -> int:
        return self._inner.partitions(topic)

    def append(self, topic: str, records: Sequence[NewRecord]) -> list[AppendResult]:
        """Seal each value under the topic's current data key, then append."""
        return self._inner.append(topic, self._sealed(topic, records))

    def append_all(self, batches: Sequence[tuple[str, Sequence[NewRecord]]]
                   ) -> list[list[AppendResult]]:
        """Seal each protected topic's values, then append them all at once."""
        return self._inner.append_all(
            [(topic, self._sealed(topic, records)) for topic, records in batches])

    def _sealed(self, topic: str, records: Sequence[NewRecord]) -> Sequence[NewRecord]:
        if not records or not self.protects(topic):
            return records
        key_id, cipher = self._keyring.encryption_key(topic)
        key_header = (H_DATA_KEY, key_id.encode())
        sealed = []
        for record in records:
            if not isinstance(record.value, bytes) or not (
                    record.key is None or isinstance(record.key, bytes)):
                raise LogError(f"records appended to {topic!r} need bytes for key and value")
            try:
                aad = associated_data(topic, key_id, record.key, record.headers)
            except (AttributeError, TypeError, ValueError) as exc:
                raise LogError("a record header must be a (str, bytes) pair") from exc
            sealed.append(NewRecord(seal(cipher, record.value, aad), record.key,
                                    (*record.headers, key_header), record.timestamp_ms))
        return sealed

    def read(self, topic: str, partition: int, offset: int, max_records: int = 500
             ) -> list[LogRecord]:
        """Opened records from `offset` on; unreadable ones are skipped, and when every
        record read was unreadable the read goes on from past them."""
        raw = self._inner.read(topic, partition, offset, max_records)
        if not self.protects(topic):
            return raw
        self._keyring.maybe_refresh()
        opened = self._open_all(raw)
        while not opened and raw:
            raw = self._inner.read(topic, partition, raw[-1].offset + 1, max_records)
            opened = self._open_all(raw)
        return opened

    def end_offset(self, topic: str, partition: int) -> int:
        return self._inner.end_offset(topic, partition)

    def end_offsets(self, topic: str) -> list[int]:
        return self._inner.end_offsets(topic)

    def wait(self, positions: Mapping[TopicPartition, int], timeout: float) -> bool:
        """As the port's `wait`, but a partition whose records past its position are all
        unreadable does not count as having records."""
        deadline = time.monotonic() + max(timeout, 0.0)
        watched = dict(positions)
        while True:
            if not self._inner.wait(watched, max(0.0, deadline - time.monotonic())):
                return False
            doubtful = [tp for tp in watched if self._may_skip(tp[0])]
            if not doubtful:
                return True
            for tp in watched:
                if tp not in doubtful and self._inner.read(tp[0], tp[1], watched[tp], 1):
                    return True
            for tp in doubtful:
                found, past = self._scan(tp, watched[tp])
                if found:
                    return True
                watched[tp] = past
            if time.monotonic() >= deadline:
                return False

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        return _OpeningConsumer(self._inner.consumer(group, topics), self)

    def close(self) -> None:
        self._inner.close()

    # -- housekeeping the inner log may offer ---------------------------------------------

    def enforce_retention(self, now_ms: int) -> int:
        """Delete expired records where the inner log deletes them itself (embedded);
        on Kafka the cluster does, by `retention.ms`, and this returns 0."""
        if isinstance(self._inner, _RetainingLog):
            return self._inner.enforce_retention(now_ms)
        return 0

    def compact(self, topic: str) -> int:
        if isinstance(self._inner, _CompactingLog):
            return self._inner.compact(topic)
        return 0

    # -- opening --------------------------------------------------------------------------

    def open_records(self, records: Iterable[LogRecord]) -> list[LogRecord]:
        """Open records read from the inner log (used by consumers)."""
        self._keyring.maybe_refresh()
        return self._open_all(records)

    def _open_all(self, records: Iterable[LogRecord]) -> list[LogRecord]:
        out = []
        for record in records:
            opened = self._open(record, count=True) if self.protects(record.topic) else record
            if opened is not None:
                out.append(opened)
        return out

    def _open(self, record: LogRecord, count: bool) -> LogRecord | None:
        stored = record.headers
        if stored and stored[-1][0] == H_DATA_KEY:   # where `append` puts it
            raw_key_id, headers = stored[-1][1], stored[:-1]
        else:
            found = record.header(H_DATA_KEY)
            if found is None:
                return record
            raw_key_id, headers = found, tuple(h for h in stored if h[0] != H_DATA_KEY)
        key_id = raw_key_id.decode("ascii", errors="replace")
        try:
            cipher = self._keyring.decryption_key(key_id)
            aad = associated_data(record.topic, key_id, record.key, headers)
            value = open_sealed(cipher, record.value, aad)
        except DataKeyShreddedError:
            self._skipped(record, key_id, "shredded", count)
            return None
        except DataKeyUnavailableError:
            self._skipped(record, key_id, "key_unavailable", count)
            return None
        except SealedRecordError:
            self._skipped(record, key_id, "tampered", count)
            return None
        return LogRecord(record.topic, record.partition, record.offset, record.key, value,
                         headers, record.timestamp_ms)

    def _skipped(self, record: LogRecord, key_id: str, reason: str, count: bool) -> None:
        if not count:
            return
        self._unreadable[(record.topic, reason)] += 1
        tag = f"{key_id}/{reason}"
        if tag not in self._logged_keys and len(self._logged_keys) < _LOGGED_KEYS_MAX:
            self._logged_keys.add(tag)
            level = logging.INFO if reason == "shredded" else logging.ERROR
            log.log(level, "skipped unreadable records of %s (first at partition %d offset "
                    "%d): data key %s, %s", record.topic, record.partition, record.offset,
                    key_id, reason)
        return None

    def _may_skip(self, topic: str) -> bool:
        return self.protects(topic) and (
            self._keyring.has_shredded(topic)
            or any(t == topic for t, _ in self._unreadable))

    def _scan(self, tp: TopicPartition, offset: int) -> tuple[bool, int]:
        """Whether a readable record exists at or past `offset`; if not, the offset just
        past the last unreadable one."""
        while True:
            raw = self._inner.read(tp[0], tp[1], offset, _SCAN_CHUNK)
            if not raw:
                return False, offset
            if any(self._open(r, count=False) is not None for r in raw):
                return True, offset
            offset = raw[-1].offset + 1

    def unreadable_counts(self) -> dict[tuple[str, str], int]:
        """Records skipped so far, by (topic, reason)."""
        return dict(self._unreadable)


class _OpeningConsumer:
    """A consumer of the inner log whose polled records are opened."""

    def __init__(self, inner: Consumer, owner: EncryptedEventLog) -> None:
        self._inner = inner
        self._owner = owner

    @property
    def inner(self) -> Consumer:
        """The inner log's consumer, whose records are sealed."""
        return self._inner

    def poll(self, timeout: float, max_records: int = 500) -> list[LogRecord]:
        return self._owner.open_records(self._inner.poll(timeout, max_records))

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._inner.commit(offsets)

    def commit_later(self, offsets: Mapping[TopicPartition, int]) -> None:
        """The inner consumer's `commit_later`, or its `commit` when it has none."""
        if isinstance(self._inner, CommittingLater):
            self._inner.commit_later(offsets)
        else:
            self._inner.commit(offsets)

    def committed(self, tp: TopicPartition) -> int | None:
        return self._inner.committed(tp)

    def assignment(self) -> set[TopicPartition]:
        return self._inner.assignment()

    def close(self) -> None:
        self._inner.close()


@runtime_checkable
class _EmbeddedLog(AppendWatching, AppendCommitting, AppendingUnlessBusy, Protocol):
    """What the embedded log offers beyond the port."""


class _EmbeddedEncryptedEventLog(EncryptedEventLog):
    """An `EncryptedEventLog` over the embedded log, which tells of appends
    (`AppendWatching`) and appends and commits a consumer's offsets in one transaction
    (`AppendCommitting`), and appends without waiting for another writer
    (`AppendingUnlessBusy`). Sealing changes none, so all pass through: the delivery
    hubs read when told, a router step's views and offsets stay one transaction, and
    group commit appends from the event loop."""

    def __init__(self, inner: EventLog, embedded: _EmbeddedLog, keyring: DataKeyring,
                 topics: Sequence[str] = DEFAULT_TOPICS) -> None:
        super().__init__(inner, keyring, topics)
        self._embedded = embedded

    def watch_appends(self, topic: str, wake: Callable[[], None]) -> Callable[[], None]:
        return self._embedded.watch_appends(topic, wake)

    def append_unless_busy(self, topic: str, records: Sequence[NewRecord]
                           ) -> list[AppendResult] | None:
        """Seal the values if `topic` is protected, then append them unless busy. Busy
        too when sealing would first store a new data key (once a period): that write
        waits, so it is left to a caller that can."""
        if records and self.protects(topic) and not self._keyring.has_key_now(topic):
            return None
        return self._embedded.append_unless_busy(topic, self._sealed(topic, records))

    def append_all_and_commit(self, batches: Sequence[tuple[str, Sequence[NewRecord]]],
                              consumer: Consumer, offsets: Mapping[TopicPartition, int]
                              ) -> list[list[AppendResult]]:
        """Seal each protected topic's values, then append them and commit `consumer`'s
        offsets in one transaction."""
        inner_consumer = consumer.inner if isinstance(consumer, _OpeningConsumer) else consumer
        return self._embedded.append_all_and_commit(
            [(topic, self._sealed(topic, records)) for topic, records in batches],
            inner_consumer, offsets)


def encrypted_log(inner: EventLog, keyring: DataKeyring,
                  topics: Sequence[str] = DEFAULT_TOPICS) -> EncryptedEventLog:
    """`inner` behind encryption at rest, with the embedded log's capabilities when
    `inner` is the embedded log."""
    if isinstance(inner, _EmbeddedLog):
        return _EmbeddedEncryptedEventLog(inner, inner, keyring, topics)
    return EncryptedEventLog(inner, keyring, topics)


class UnreadableRecordsCollector(Collector):
    """Exposes an `EncryptedEventLog`'s skip counts as a Prometheus counter."""

    def __init__(self, event_log: EncryptedEventLog) -> None:
        self._log = event_log

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "handoff_records_unreadable",
            "Encrypted records skipped on read: data key shredded, unavailable, or the "
            "record altered.", labels=["topic", "reason"])
        for (topic, reason), count in sorted(self._log.unreadable_counts().items()):
            family.add_metric([topic, reason], count)
        yield family


def register_encryption_metrics(event_log: EventLog, registry: CollectorRegistry) -> None:
    """Add the unreadable-records counter to `registry` when `event_log` encrypts."""
    if isinstance(event_log, EncryptedEventLog):
        registry.register(UnreadableRecordsCollector(event_log))
