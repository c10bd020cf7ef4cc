"""The event-log port: what Handoff needs from a log, whichever technology provides it.

Two adapters implement it: `SqliteEventLog` (embedded, the default) and `KafkaEventLog`.
One contract suite in `tests/contract/` runs against both, so anything stated here is
tested, not hoped for.

Semantics every adapter guarantees:

- A topic has a fixed number of partitions. Records with the same key go to the same
  partition (Kafka's murmur2 partitioner), so per-key order holds.
- `append` returns only after every record is durable on the adapter's terms (committed
  to the WAL; acknowledged by all in-sync replicas). Offsets in a partition start at 0
  and grow by one per record.
- `read` never blocks; `wait` blocks until a partition has data past an offset or the
  timeout passes.
- A consumer group's committed offset is the next offset to read, as in Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from broker.frozen_init import quick_init

TopicPartition = tuple[str, int]
Headers = tuple[tuple[str, bytes], ...]


@quick_init
@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to append. The log assigns partition (from the key), offset and time."""

    value: bytes
    key: bytes | None = None
    headers: Headers = ()
    timestamp_ms: int | None = None
    """Event time to store; the adapter uses the append time when None."""


@quick_init
@dataclass(frozen=True, slots=True)
class LogRecord:
    """A record as stored in the log."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How a topic must be set up."""

    name: str
    partitions: int = 1
    compacted: bool = False
    """Keep only the latest record per key (registry, consents snapshot)."""
    retention_ms: int | None = None
    """None keeps records forever."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    partition: int
    offset: int


@runtime_checkable
class Consumer(Protocol):
    """A member of a consumer group, reading the partitions the group assigns it."""

    def poll(self, timeout: float, max_records: int = 500) -> list[LogRecord]:
        """Return the next records of the assigned partitions, waiting up to `timeout`
        seconds when there are none. Records of one partition come in offset order."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Record, durably, that the group has processed everything before `offsets`
        (the next offset to read per partition)."""
        ...

    def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for a partition, or None if it never committed."""
        ...

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member currently owns."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class EventLog(Protocol):
    """Named topics of partitioned, keyed records with headers."""

    def ensure_topic(self, spec: TopicSpec) -> None:
        """Create the topic if missing. Raise `TopicMismatchError` when it exists with a
        different partition count or cleanup policy."""
        ...

    def topics(self) -> list[str]: ...

    def partitions(self, topic: str) -> int:
        """Number of partitions; raise `UnknownTopicError` for a missing topic."""
        ...

    def append(self, topic: str, records: Sequence[NewRecord]) -> list[AppendResult]:
        """Append records durably, as one batch; results are in input order."""
        ...

    def append_all(self, batches: Sequence[tuple[str, Sequence[NewRecord]]]
                   ) -> list[list[AppendResult]]:
        """`append` to several topics at once, returning when every record is durable:
        one transaction on the embedded log, one flush on Kafka. Results per batch, each
        in input order. An error leaves none of them written on the embedded log; on
        Kafka, as with `append`, records sent before the error may be written."""
        ...

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 500
    ) -> list[LogRecord]:
        """Records of one partition from `offset` on, without blocking."""
        ...

    def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next appended record of this partition will get."""
        ...

    def end_offsets(self, topic: str) -> list[int]:
        """`end_offset` of every partition of `topic`, in partition order, asked
        together (one request on Kafka, where one per partition costs a round trip
        each)."""
        ...

    def wait(self, positions: Mapping[TopicPartition, int], timeout: float) -> bool:
        """Block until some partition in `positions` has a record at or past the given
        offset (True) or `timeout` seconds pass (False)."""
        ...

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """Join consumer group `group` reading `topics`. Members of one group split the
        partitions between them; a new member starts at the committed offset, or at 0."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class AppendWatching(Protocol):
    """A log that can say, without being asked, that a topic may have advanced (the
    embedded log: appends of this process and its doorbell). A reader on an event loop
    then reads when told rather than blocking a thread in `wait`; a log without it
    (Kafka, whose wait is a long-poll fetch) is waited on in a thread."""

    def watch_appends(self, topic: str, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake()` soon after every append to `topic` committed from now on (and
        sometimes when nothing was appended), from whatever thread learns of it: it must
        be quick and must not raise. Returns the function that stops the calls."""
        ...


@runtime_checkable
class AppendCommitting(Protocol):
    """A log that can append records and commit a consumer's offsets in one transaction
    (the embedded log). A reader that writes what it made of a batch and then commits
    the batch (the router) uses it so that the two happen together: a crash then either
    replays the batch with nothing of it written, or finds it written and committed. A
    log without it (Kafka) appends, then commits, and a crash in between replays a batch
    whose output is already written (duplicates, never a loss)."""

    def append_all_and_commit(self, batches: Sequence[tuple[str, Sequence[NewRecord]]],
                              consumer: Consumer, offsets: Mapping[TopicPartition, int]
                              ) -> list[list[AppendResult]]:
        """`append_all(batches)` and `consumer.commit(offsets)` as one transaction: all
        or none. `consumer` must be a member of a consumer group of this log (else
        `LogError`, nothing written)."""
        ...


@runtime_checkable
class CommittingLater(Protocol):
    """A consumer that can commit offsets without its caller waiting (the Kafka group
    member, whose synchronous commit waits behind the fetch it has in flight). The
    router hands each batch's offsets over once the batch's output is acknowledged and
    polls the next batch at once. A consumer without it (the embedded log's, committed
    in the router's append transaction) commits with `commit`."""

    def commit_later(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Have `offsets` committed soon, as `commit` would, without waiting for it; a
        later `commit` or `close` of this consumer commits them too. Offsets of a
        partition the group moves to another member first are not committed, and a
        crash may come before they are: those records are then read again (at least
        once), never skipped."""
        ...


@runtime_checkable
class AppendingUnlessBusy(Protocol):
    """A log that can append without waiting for another writer (the embedded log, whose
    writers take turns). A caller that must not block (group commit on the event loop)
    tries, and on None tries again later or hands the records to a thread that waits. A
    log without it (Kafka, whose every append waits for the cluster) is appended to from
    a thread."""

    def append_unless_busy(self, topic: str, records: Sequence[NewRecord]
                           ) -> list[AppendResult] | None:
        """`append(topic, records)` if it can start at once; None, with nothing written,
        while another writer (of this process or another) holds the log, or when the
        append would first have to write something else that may wait."""
        ...
