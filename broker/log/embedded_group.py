"""Consumer groups for a log that runs inside one process.

Kafka coordinates a group through its brokers. The embedded log has no brokers, so the
members of a group are coordinated here, in memory: when a member joins or closes, the
partitions of the group's topics are dealt out again among the members that remain.
Committed offsets are kept by the log, durably, through `GroupOffsetStore`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from broker.errors import LogError
from broker.log.port import LogRecord, TopicPartition

_REBALANCE_CHECK_S = 0.2
"""Longest a polling member waits before it notices a change in its assignment."""


class GroupOffsetStore(Protocol):
    """Where committed group offsets live."""

    def save_group_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Store offsets durably, all or none."""
        ...

    def load_group_offset(self, group: str, tp: TopicPartition) -> int | None:
        """The committed offset, or None if the group never committed for `tp`."""
        ...


class QuietTopics:
    """A member's memory, between its looks at the same positions, of the topics with
    nothing past them: `since` maps each to the generation of the log's announcements
    when that was found (`RecordSource.advanced` keeps it); `looked_at` is the
    generation taken before the last look."""

    __slots__ = ("looked_at", "since")

    def __init__(self) -> None:
        self.since: dict[str, int] = {}
        self.looked_at = 0

    def drained(self, topics: set[str]) -> None:
        """Reads since the last look took everything of `topics`: quiet as of then."""
        for topic in topics:
            self.since[topic] = self.looked_at


class RecordSource(Protocol):
    """The part of an event log a group member reads through."""

    def partitions(self, topic: str) -> int: ...

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 500
    ) -> list[LogRecord]: ...

    def wait(self, positions: Mapping[TopicPartition, int], timeout: float,
             quiet: QuietTopics | None = None) -> bool: ...

    def advanced(self, positions: Mapping[TopicPartition, int],
                 quiet: QuietTopics | None = None) -> list[TopicPartition]:
        """The partitions of `positions` that hold records past the position, or may.
        `quiet` (kept by the caller for the same positions, updated by the call): topics
        found with nothing new, not looked at again until an append to them is
        announced."""
        ...


class EmbeddedGroupCoordinator:
    """Keeps the members of every group and deals partitions out among them.

    Within a topic, partitions go round-robin to the members subscribed to it, in the
    order they joined: with partitions 0-3 and members A, B, A owns 0 and 2, B owns 1 and 3.
    """

    def __init__(self, source: RecordSource, store: GroupOffsetStore) -> None:
        self._source = source
        self._store = store
        self._members: dict[str, list[EmbeddedConsumer]] = {}
        self._lock = threading.Lock()

    def join(self, group: str, topics: Sequence[str]) -> EmbeddedConsumer:
        """Add a member to `group` and rebalance the group."""
        if not group:
            raise LogError("a consumer group needs a name")
        member = EmbeddedConsumer(self, self._source, self._store, group, tuple(topics))
        with self._lock:
            self._members.setdefault(group, []).append(member)
            self._rebalance(group)
        return member

    def leave(self, member: EmbeddedConsumer) -> None:
        """Remove a member and give its partitions to the others."""
        with self._lock:
            members = self._members.get(member.group, [])
            if member in members:
                members.remove(member)
                self._rebalance(member.group)

    def group_of(self, consumer: object) -> str:
        """The group of `consumer`, an open member made by this coordinator (whose log
        then may commit its offsets); `LogError` for anything else."""
        if not isinstance(consumer, EmbeddedConsumer) or consumer._coordinator is not self:
            raise LogError("offsets can be committed with an append only for a member of "
                           "a consumer group of the same log")
        consumer._check_open()
        return consumer.group

    def close_all(self) -> None:
        """Close every member, as when the log closes."""
        with self._lock:
            members = [member for group in self._members.values() for member in group]
            # Emptied first, so closing members does not rebalance a closing log.
            self._members = {}
        for member in members:
            member.close()

    def _rebalance(self, group: str) -> None:
        members = self._members.get(group, [])
        shares: dict[int, set[TopicPartition]] = {id(member): set() for member in members}
        topics = sorted({topic for member in members for topic in member.topics})
        for topic in topics:
            subscribed = [member for member in members if topic in member.topics]
            for partition in range(self._source.partitions(topic)):
                owner = subscribed[partition % len(subscribed)]
                shares[id(owner)].add((topic, partition))
        for member in members:
            member._assign(shares[id(member)])


class EmbeddedConsumer:
    """A member of an embedded consumer group (the `Consumer` port).

    A partition newly assigned to this member is read from the group's committed offset,
    or from 0. Records handed out but not committed before a rebalance are read again by
    the partition's next owner: delivery is at least once.
    """

    def __init__(
        self,
        coordinator: EmbeddedGroupCoordinator,
        source: RecordSource,
        store: GroupOffsetStore,
        group: str,
        topics: tuple[str, ...],
    ) -> None:
        self.group = group
        self.topics = topics
        self._coordinator = coordinator
        self._source = source
        self._store = store
        self._lock = threading.Lock()
        # Next offset to hand out per owned partition; None until looked up.
        self._positions: dict[TopicPartition, int | None] = {}
        self._reassigned = threading.Event()
        self._quiet = QuietTopics()
        """Topics with nothing past this member's positions (`RecordSource.advanced`);
        replaced when the positions change other than by reading."""
        self._next_first = 0
        self._closed = False

    def poll(self, timeout: float, max_records: int = 500) -> list[LogRecord]:
        """The next records of the owned partitions, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            self._reassigned.clear()
            positions, quiet = self._current_positions()
            if timeout <= 0:
                # A look that will not wait looks at every topic: what was appended
                # since the last look may not be announced yet (a ring on its way).
                quiet.since.clear()
            if positions:
                batch = self._fetch(positions, max_records, quiet)
                if batch:
                    return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            pause = min(remaining, _REBALANCE_CHECK_S)
            if positions:
                self._source.wait(positions, pause, quiet)
            else:
                self._reassigned.wait(pause)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Durably record the next offset to read per partition for the group."""
        self._check_open()
        self._store.save_group_offsets(self.group, offsets)

    def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for `tp`, or None if it never committed."""
        self._check_open()
        return self._store.load_group_offset(self.group, tp)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member owns now."""
        with self._lock:
            return set(self._positions)

    def close(self) -> None:
        """Leave the group; its partitions go to the remaining members."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._coordinator.leave(self)
        with self._lock:
            self._positions = {}
        self._reassigned.set()

    def _assign(self, partitions: set[TopicPartition]) -> None:
        with self._lock:
            if self._closed:
                return
            self._positions = {tp: self._positions.get(tp) for tp in sorted(partitions)}
            self._quiet = QuietTopics()
        self._reassigned.set()

    def _check_open(self) -> None:
        if self._closed:
            raise LogError(f"this member of consumer group {self.group!r} is closed")

    def _current_positions(self) -> tuple[dict[TopicPartition, int], QuietTopics]:
        """The positions known, and the memory of quiet topics that goes with them."""
        self._check_open()
        with self._lock:
            unknown = [tp for tp, offset in self._positions.items() if offset is None]
        looked_up = {tp: self._store.load_group_offset(self.group, tp) or 0 for tp in unknown}
        with self._lock:
            for tp, offset in looked_up.items():
                if tp in self._positions and self._positions[tp] is None:
                    self._positions[tp] = offset
            if looked_up:
                self._quiet = QuietTopics()
            return ({tp: offset for tp, offset in self._positions.items() if offset is not None},
                    self._quiet)

    def _fetch(self, positions: dict[TopicPartition, int], max_records: int,
               quiet: QuietTopics) -> list[LogRecord]:
        # Start each poll at a different partition so a busy partition cannot starve
        # the others when batches fill up.
        # Only partitions that advanced are read: a router owns every ingress partition
        # of every event type, and most of them are idle at any moment. Topics found
        # quiet, or read to their end, are not looked at until an append to them is told.
        advanced = set(self._source.advanced(positions, quiet))
        order = [tp for tp in positions if tp in advanced]
        if not order:
            return []
        start = self._next_first % len(order)
        self._next_first += 1
        batch: list[LogRecord] = []
        left: set[str] = set()  # topics that may hold more than was read
        for tp in order[start:] + order[:start]:
            wanted = max_records - len(batch)
            if wanted <= 0:
                left.add(tp[0])
                continue
            records = self._source.read(tp[0], tp[1], positions[tp], wanted)
            if len(records) == wanted:
                left.add(tp[0])
            if not records:
                continue
            with self._lock:
                # A rebalance during the read may have taken the partition away, or
                # another poll may have moved it on; then these records are not ours.
                if self._positions.get(tp) != positions[tp]:
                    left.add(tp[0])
                    continue
                self._positions[tp] = records[-1].offset + 1
            batch.extend(records)
        quiet.drained({topic for topic, _ in order} - left)
        return batch
