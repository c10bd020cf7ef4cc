"""Delivery hubs over the embedded log are told of appends and read on the event loop
(a backlog too, a read at a time): an append by another process (the router's) reaches
a stream at once, an append that commits while the hub is reading is not slept through,
and a log that cannot tell still delivers (waited on in a worker thread)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from itertools import pairwise
from pathlib import Path

import anyio
import pytest

import broker.delivery.fanout as fanout_module
from broker.delivery.cursor import Cursor
from broker.delivery.envelope import delivery_headers
from broker.delivery.fanout import FanOut
from broker.delivery.feed import Delivery, DeliveryFeed
from broker.log import NewRecord, SqliteEventLog, TopicSpec
from broker.log.port import LogRecord, TopicPartition
from broker.topics import delivery_topic
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore
from schemas.wire import WireCodec

SUB = "told"
TOPIC = delivery_topic(SUB)
SLOW = 60.0
"""Safety polls and hub waits so slow that only being told can deliver within a test."""
WITHIN = 10.0
VIEW = {"type": "record", "name": "V", "namespace": "test.told",
        "fields": [{"name": "event_id", "type": "string"}]}
_IDS = re.compile(r'^data: {"event_id":"([^"]+)"', re.MULTILINE)


@pytest.fixture(autouse=True)
def hubs_wait_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout_module, "WAIT_SECONDS", SLOW)


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[tuple[SqliteEventLog, SqliteEventLog]]:
    """The hub's log and a second log object on the same file, with its own doorbell,
    as the router's process has."""
    path = tmp_path / "log.db"
    mine = SqliteEventLog(path, safety_poll_s=SLOW, cross_process_poll_s=SLOW)
    mine.ensure_topic(TopicSpec(TOPIC))
    router = SqliteEventLog(path, safety_poll_s=SLOW, cross_process_poll_s=SLOW)
    try:
        yield mine, router
    finally:
        router.close()
        mine.close()


class Deliveries:
    """Appends deliveries of a one-field view to the subscription's topic."""

    def __init__(self) -> None:
        self.registry = SchemaRegistry(InMemoryRegistryStore())
        self.schema_id = self.registry.register("told-view", VIEW).schema_id
        self.codec = WireCodec(self.registry)

    def append(self, event_log: SqliteEventLog, *event_ids: str) -> None:
        event_log.append(TOPIC, [NewRecord(
            value=self.codec.encode(self.schema_id, {"event_id": e}), key=e.encode(),
            headers=delivery_headers(e, f"d-{e}", "birth", "vital-records", 1, 1, b"[]",
                                     b"[]")) for e in event_ids])


async def received(chunks: object, count: int) -> list[str]:
    ids: list[str] = []
    with anyio.fail_after(WITHIN):
        while len(ids) < count:
            ids.extend(_IDS.findall(await anext(chunks)))  # type: ignore[call-overload]
    return ids


async def stream(fanout: FanOut, feed: DeliveryFeed) -> object:
    hub = await fanout.hub(SUB)
    return hub.follow(Cursor(tuple(feed.end_offsets(SUB))), tick=SLOW)


def test_an_append_by_another_process_reaches_a_stream_without_a_poll(logs) -> None:
    mine, router = logs
    deliveries = Deliveries()
    feed = DeliveryFeed(mine, deliveries.codec, deliveries.registry)

    async def run() -> list[str]:
        fanout = FanOut(feed, anyio.CapacityLimiter(4))
        try:
            chunks = await stream(fanout, feed)
            deliveries.append(router, "a1", "a2")
            first = await received(chunks, 2)
            deliveries.append(router, "a3")
            return first + await received(chunks, 1)
        finally:
            await fanout.close()

    assert asyncio.run(run()) == ["a1", "a2", "a3"]


class AppendsWhileReading(DeliveryFeed):
    """A feed that, once armed, commits a delivery right after a read has looked at the
    log (with `in_a_backlog`, only a read that follows a full one: a backlog's): the read
    misses it, and only being told afterwards can deliver it."""

    def __init__(self, event_log: SqliteEventLog, appender: SqliteEventLog,
                 deliveries: Deliveries, in_a_backlog: bool) -> None:
        super().__init__(event_log, deliveries.codec, deliveries.registry)
        self._appender = appender
        self._deliveries = deliveries
        self._in_a_backlog = in_a_backlog
        self._last_was_full = False
        self.armed: list[str] = []

    def read_steps(self, subscription_id: str, cursor: Cursor, limit: int,
                   until: Cursor | None = None) -> list[tuple[Cursor, Delivery]]:
        steps = super().read_steps(subscription_id, cursor, limit, until)
        after_a_full_read, self._last_was_full = self._last_was_full, len(steps) >= limit
        if self.armed and (after_a_full_read or not self._in_a_backlog):
            self._deliveries.append(self._appender, self.armed.pop())
        return steps


@pytest.mark.parametrize("by", ["this process", "another process"])
@pytest.mark.parametrize("backlog", [0, fanout_module.ON_LOOP + 10],
                         ids=["read-on-the-loop", "backlog-read-on-the-loop"])
def test_an_append_committed_while_the_hub_reads_is_not_slept_through(logs, by, backlog
                                                                       ) -> None:
    mine, router = logs
    deliveries = Deliveries()
    feed = AppendsWhileReading(mine, mine if by == "this process" else router, deliveries,
                               in_a_backlog=backlog > 0)
    before = [f"b{i:03d}" for i in range(backlog + 1)]

    async def run() -> list[str]:
        fanout = FanOut(feed, anyio.CapacityLimiter(4), buffer=len(before) + 1)
        try:
            chunks = await stream(fanout, feed)
            feed.armed.append("missed-by-the-read")
            deliveries.append(router, *before)
            return await received(chunks, len(before) + 1)
        finally:
            await fanout.close()

    assert asyncio.run(run()) == [*before, "missed-by-the-read"]


class CannotTell:
    """The parts of the port a feed uses, without `watch_appends` (as Kafka's log)."""

    def __init__(self, inner: SqliteEventLog) -> None:
        self._inner = inner

    def partitions(self, topic: str) -> int:
        return self._inner.partitions(topic)

    def end_offset(self, topic: str, partition: int) -> int:
        return self._inner.end_offset(topic, partition)

    def read(self, topic: str, partition: int, offset: int, max_records: int = 500
             ) -> list[LogRecord]:
        return self._inner.read(topic, partition, offset, max_records)

    def wait(self, positions: Mapping[TopicPartition, int], timeout: float) -> bool:
        return self._inner.wait(positions, timeout)


def test_a_log_that_cannot_tell_is_waited_on_and_still_delivers(logs) -> None:
    mine, router = logs
    deliveries = Deliveries()
    feed = DeliveryFeed(CannotTell(mine), deliveries.codec, deliveries.registry)  # type: ignore[arg-type]
    assert feed.watch(SUB, lambda: None) is None

    async def run() -> list[str]:
        fanout = FanOut(feed, anyio.CapacityLimiter(4))
        try:
            chunks = await stream(fanout, feed)
            deliveries.append(router, "c1")
            return await received(chunks, 1)
        finally:
            await fanout.close()

    assert asyncio.run(run()) == ["c1"]


def test_a_backlog_larger_than_a_read_on_the_loop_arrives_whole_and_in_order(logs) -> None:
    mine, router = logs
    deliveries = Deliveries()
    feed = DeliveryFeed(mine, deliveries.codec, deliveries.registry)
    ids = [f"e{i:04d}" for i in range(3 * fanout_module.BATCH)]

    async def run() -> list[str]:
        fanout = FanOut(feed, anyio.CapacityLimiter(4), buffer=len(ids))
        try:
            chunks = await stream(fanout, feed)
            deliveries.append(router, *ids)
            return await received(chunks, len(ids))
        finally:
            await fanout.close()

    assert asyncio.run(run()) == ids


def test_a_backlog_is_read_on_the_loop_with_the_loops_other_work_between_reads(logs
                                                                                ) -> None:
    mine, router = logs
    deliveries = Deliveries()
    ticks = 0
    ticks_at_reads: list[int] = []

    class Counting(DeliveryFeed):
        def read_steps(self, subscription_id: str, cursor: Cursor, limit: int,
                       until: Cursor | None = None) -> list[tuple[Cursor, Delivery]]:
            ticks_at_reads.append(ticks)
            return super().read_steps(subscription_id, cursor, limit, until)

    feed = Counting(mine, deliveries.codec, deliveries.registry)
    ids = [f"e{i:04d}" for i in range(4 * fanout_module.ON_LOOP)]

    async def other_work() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def run() -> list[str]:
        fanout = FanOut(feed, anyio.CapacityLimiter(4), buffer=len(ids))
        other = asyncio.get_running_loop().create_task(other_work())
        try:
            chunks = await stream(fanout, feed)
            deliveries.append(router, *ids)
            return await received(chunks, len(ids))
        finally:
            other.cancel()
            await fanout.close()

    assert asyncio.run(run()) == ids
    # Four full reads and a short one at least, and the loop ran other work before each.
    assert len(ticks_at_reads) >= 5
    assert all(b > a for a, b in pairwise(ticks_at_reads))
