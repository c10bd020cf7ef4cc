"""In-memory fakes of the broker's ports, for unit tests without I/O.

`MemoryEventLog` keeps topics in lists; `MemoryAuditStore` keeps appended audit entries.
Both can share a `Journal`, which records what became durable in which order, so a test
can assert the order a component promises (audit before delivery, commit last).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from broker.audit import AuditEntry
from broker.errors import UnknownTopicError
from broker.ingest.idempotency import Accepted
from broker.log.partitioner import partition_for
from broker.log.port import AppendResult, LogRecord, NewRecord, TopicPartition, TopicSpec


@dataclass
class Journal:
    """What became durable, in order: `("append", topic)`, `("audit", kind)`,
    `("commit", group)`."""

    entries: list[tuple[str, str]] = field(default_factory=list)

    def kinds(self, what: str) -> list[str]:
        return [detail for kind, detail in self.entries if kind == what]

    def first(self, what: str, detail_prefix: str = "") -> int:
        return next(i for i, (kind, detail) in enumerate(self.entries)
                    if kind == what and detail.startswith(detail_prefix))

    def last(self, what: str, detail_prefix: str = "") -> int:
        return max(i for i, (kind, detail) in enumerate(self.entries)
                   if kind == what and detail.startswith(detail_prefix))


class MemoryEventLog:
    """The `EventLog` port over lists. `fail_appends_to` makes appends to topics with
    that prefix raise, to test what a component does when the log fails half-way."""

    def __init__(self, journal: Journal | None = None, clock_ms: int = 1_780_000_000_000
                 ) -> None:
        self.journal = journal or Journal()
        self._topics: dict[str, list[list[LogRecord]]] = {}
        self._committed: dict[str, dict[TopicPartition, int]] = {}
        self._clock = itertools.count(clock_ms)
        self.fail_appends_to: str | None = None

    def ensure_topic(self, spec: TopicSpec) -> None:
        self._topics.setdefault(spec.name, [[] for _ in range(spec.partitions)])

    def topics(self) -> list[str]:
        return sorted(self._topics)

    def partitions(self, topic: str) -> int:
        return len(self._partitions(topic))

    def _partitions(self, topic: str) -> list[list[LogRecord]]:
        try:
            return self._topics[topic]
        except KeyError:
            raise UnknownTopicError(f"no topic {topic}") from None

    def append_all(self, batches: Sequence[tuple[str, Sequence[NewRecord]]]
                   ) -> list[list[AppendResult]]:
        return [self.append(topic, records) for topic, records in batches]

    def append(self, topic: str, records: Sequence[NewRecord]) -> list[AppendResult]:
        if self.fail_appends_to is not None and topic.startswith(self.fail_appends_to):
            from broker.errors import LogUnavailableError

            raise LogUnavailableError(f"appending to {topic} failed (test)")
        self.ensure_topic(TopicSpec(topic))
        partitions = self._topics[topic]
        results = []
        for record in records:
            partition = (partition_for(record.key, len(partitions))
                         if record.key is not None else 0)
            stored = partitions[partition]
            stamp = record.timestamp_ms if record.timestamp_ms is not None \
                else next(self._clock)
            stored.append(LogRecord(topic, partition, len(stored), record.key,
                                    record.value, record.headers, stamp))
            results.append(AppendResult(partition, len(stored) - 1))
        self.journal.entries.append(("append", topic))
        return results

    def read(self, topic: str, partition: int, offset: int, max_records: int = 500
             ) -> list[LogRecord]:
        return self._partitions(topic)[partition][offset:offset + max_records]

    def end_offset(self, topic: str, partition: int) -> int:
        return len(self._partitions(topic)[partition])

    def end_offsets(self, topic: str) -> list[int]:
        return [len(records) for records in self._partitions(topic)]

    def wait(self, positions: Mapping[TopicPartition, int], timeout: float) -> bool:
        return any(self.end_offset(t, p) > o for (t, p), o in positions.items())

    def consumer(self, group: str, topics: Sequence[str]) -> MemoryConsumer:
        return MemoryConsumer(self, group, topics)

    def close(self) -> None:
        pass

    # -- for tests ----------------------------------------------------------------------

    def records(self, topic: str) -> list[LogRecord]:
        """Every record of a topic, partition by partition."""
        return [r for p in self._topics.get(topic, []) for r in p]


class MemoryConsumer:
    """The only member of its group: it owns every partition of its topics."""

    def __init__(self, event_log: MemoryEventLog, group: str, topics: Sequence[str]) -> None:
        self._log = event_log
        self._group = group
        self._topics = list(topics)
        committed = event_log._committed.setdefault(group, {})
        self._positions = {tp: committed.get(tp, 0) for tp in self.assignment()}

    def assignment(self) -> set[TopicPartition]:
        return {(t, p) for t in self._topics for p in range(self._log.partitions(t))}

    def poll(self, timeout: float, max_records: int = 500) -> list[LogRecord]:
        out: list[LogRecord] = []
        for tp in sorted(self.assignment()):
            position = self._positions.get(tp, 0)
            batch = self._log.read(tp[0], tp[1], position, max_records - len(out))
            out.extend(batch)
            self._positions[tp] = position + len(batch)
            if len(out) >= max_records:
                break
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._log._committed[self._group].update(offsets)
        self._log.journal.entries.append(("commit", self._group))

    def committed(self, tp: TopicPartition) -> int | None:
        return self._log._committed[self._group].get(tp)

    def close(self) -> None:
        pass


class MemoryAuditStore:
    """Records appended audit entries; enough of the audit store for the `Auditor`."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal or Journal()
        self.entries: list[AuditEntry] = []

    def append(self, entries: Sequence[AuditEntry]) -> None:
        self.entries.extend(entries)
        for entry in entries:
            self.journal.entries.append(("audit", str(entry.kind)))

    def record(self, entries: Sequence[AuditEntry]) -> None:
        self.append(entries)

    def of_kind(self, kind: str) -> list[AuditEntry]:
        return [e for e in self.entries if e.kind == kind]

    def close(self) -> None:
        pass


class MemoryIdempotencyIndex:
    """The `IdempotencyIndex` port over a dict."""

    recovers_from_log = False

    def __init__(self) -> None:
        self.accepted: dict[tuple[str, str], Accepted] = {}

    def catch_up(self, topics: Iterable[str]) -> None:
        pass

    def remember_all(self, accepted: Sequence[tuple[str, str, Accepted]]) -> None:
        for source, event_id, where in accepted:
            self.accepted.setdefault((source, event_id), where)

    def lookup(self, source: str, event_ids: Iterable[str]) -> dict[str, Accepted]:
        return {e: self.accepted[(source, e)] for e in event_ids if (source, e) in self.accepted}

    def remember(self, source: str, accepted: dict[str, Accepted]) -> None:
        for event_id, where in accepted.items():
            self.accepted.setdefault((source, event_id), where)

    def pending_since(self) -> float | None:
        return None

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class CommittingEventLog(MemoryEventLog):
    """A `MemoryEventLog` with `AppendCommitting`, as the embedded log has: the records
    and the consumer's offsets of one call become durable together, or none of them."""

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.joint_commits = 0
        """Calls of `append_all_and_commit` that wrote."""

    def append_all_and_commit(self, batches: Sequence[tuple[str, Sequence[NewRecord]]],
                              consumer: MemoryConsumer, offsets: Mapping[TopicPartition, int]
                              ) -> list[list[AppendResult]]:
        failing = self.fail_appends_to
        if failing is not None and any(topic.startswith(failing) for topic, _ in batches):
            from broker.errors import LogUnavailableError

            raise LogUnavailableError("appending failed (test); nothing written")
        results = self.append_all(batches)
        consumer.commit(offsets)
        self.joint_commits += 1
        return results


class LaterCommittingEventLog(MemoryEventLog):
    """A `MemoryEventLog` whose consumers have `CommittingLater`, as Kafka's group
    members do: the offsets handed over are committed at once here, and counted."""

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.later_commits = 0
        """Calls of a consumer's `commit_later`."""

    def consumer(self, group: str, topics: Sequence[str]) -> MemoryConsumer:
        return _LaterCommittingConsumer(self, group, topics)


class _LaterCommittingConsumer(MemoryConsumer):
    def __init__(self, event_log: LaterCommittingEventLog, group: str,
                 topics: Sequence[str]) -> None:
        super().__init__(event_log, group, topics)
        self._owner = event_log

    def commit_later(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._owner.later_commits += 1
        self.commit(offsets)


class GatedEventLog(MemoryEventLog):
    """Appends wait until `gate` is set, so a test can queue work behind a slow append."""

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def append(self, topic: str, records: Sequence[NewRecord]) -> list[AppendResult]:
        self.waiting.set()
        assert self.gate.wait(10), "the test never opened the gate"
        return super().append(topic, records)
