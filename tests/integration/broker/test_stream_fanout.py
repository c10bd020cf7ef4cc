"""Streams of one subscription share one reader (`broker.delivery.fanout`), over a real
broker in the test's process (embedded log, router thread): every stream gets every
event once and in order, and a stream whose client stops reading holds nobody back and
misses nothing once it reads again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from broker.bootstrap import Broker
from broker.delivery.cursor import Cursor
from broker.delivery.fanout import FanOut, Hub
from tests.demo_broker import demo_api, demo_birth
from tests.e2e.harness import demo_keys

pytestmark = pytest.mark.slow

SUB = "eval-births"
PUBLISHER = {"Authorization": f"Bearer {demo_keys()['county-general']}"}
WITHIN = 20.0
"""Seconds a test waits for events a stream should get (a loaded machine included)."""


@pytest.fixture
def api(tmp_path) -> Iterator[tuple[TestClient, Broker]]:
    with demo_api(tmp_path / "data") as running:
        yield running


def publish(client: TestClient, ids: list[str]) -> None:
    for event_id in ids:
        response = client.post("/v1/events/birth", json=demo_birth(event_id=event_id),
                               headers=PUBLISHER)
        assert response.status_code == 202, response.text


class Reader:
    """One stream's events as (cursor, event_id), read from `follow` as a client would."""

    def __init__(self, chunks: AsyncIterator[str]) -> None:
        self.chunks = chunks
        self.events: list[tuple[str, str]] = []

    async def read_until(self, count: int, timeout: float = WITHIN) -> list[str]:
        with anyio.fail_after(timeout):
            while len(self.events) < count:
                self.take(await anext(self.chunks))
        return self.ids()

    def take(self, chunk: str) -> None:
        for block in chunk.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "data" in fields:
                self.events.append((fields["id"], json.loads(fields["data"])["event_id"]))

    def ids(self) -> list[str]:
        return [event_id for _, event_id in self.events]


def routed(broker: Broker, count: int) -> list[str]:
    """The first `count` event ids of the subscription's delivery topic, in feed order."""
    deliveries, _ = broker.api.feed.read(SUB, Cursor.start(broker.api.feed.partitions(SUB)),
                                         count)
    return [d.envelope.event_id for d in deliveries]


async def small_buffers(broker: Broker, fell_back: list[str]) -> tuple[FanOut, Hub, Cursor]:
    """A fan-out whose streams hold 4 frames, its hub for SUB, and the topic's end."""
    fanout = FanOut(broker.api.feed, anyio.CapacityLimiter(8), buffer=4, ring=8,
                    on_fallback=fell_back.append)
    hub = await fanout.hub(SUB)
    return fanout, hub, Cursor(tuple(broker.api.feed.end_offsets(SUB)))


def test_two_streams_get_every_event_once_and_in_order(api):
    client, broker = api
    publish(client, [f"early-{i}" for i in range(5)])

    async def run() -> tuple[list[str], list[str]]:
        fanout = FanOut(broker.api.feed, anyio.CapacityLimiter(8))
        hub = await fanout.hub(SUB)
        start = Cursor.start(broker.api.feed.partitions(SUB))
        first, second = Reader(hub.follow(start, 0.1)), Reader(hub.follow(start, 0.1))
        try:
            await first.read_until(5)
            await second.read_until(5)
            # Both live now; these arrive through the one shared reader.
            await anyio.to_thread.run_sync(publish, client, [f"live-{i}" for i in range(20)])
            return await first.read_until(25), await second.read_until(25)
        finally:
            await fanout.close()

    first, second = asyncio.run(run())
    expected = routed(broker, 25)
    assert len(set(expected)) == 25
    assert first == expected
    assert second == expected


def test_a_stalled_stream_delays_no_other_and_misses_nothing(api):
    client, broker = api

    async def run() -> None:
        # A buffer of 4 frames: the stalled stream overflows after a few events.
        fell_back: list[str] = []
        fanout, hub, start = await small_buffers(broker, fell_back)
        reading, stalled = Reader(hub.follow(start, 0.1)), Reader(hub.follow(start, 0.1))
        try:
            # Both join, both get the first event; then one client stops reading.
            await anyio.to_thread.run_sync(publish, client, ["first"])
            assert await reading.read_until(1) == ["first"]
            assert await stalled.read_until(1) == ["first"]
            later = [f"later-{i}" for i in range(30)]
            sending = asyncio.get_running_loop().run_in_executor(
                None, publish, client, later)
            got = await reading.read_until(31)
            await sending
            assert got == ["first", *later] == routed(broker, 31)
            # The overflow is counted (handoff_stream_fallbacks on /metrics).
            assert fell_back and set(fell_back) == {SUB}, "the stream never overflowed"

            # Reading again, it gets everything after what it had, without a gap.
            assert await stalled.read_until(31) == got
            cursors = [Cursor.parse(c, 1).offsets[0] for c, _ in stalled.events]
            assert cursors == list(range(start.offsets[0] + 1, start.offsets[0] + 32))
            # ... and rejoins the shared reader: one more event reaches both.
            await anyio.to_thread.run_sync(publish, client, ["last"])
            assert (await reading.read_until(32))[-1] == "last"
            assert (await stalled.read_until(32))[-1] == "last"
        finally:
            await fanout.close()

    asyncio.run(run())


def test_a_burst_larger_than_the_buffer_reaches_a_reading_stream_through_the_hub(api):
    client, broker = api

    async def run() -> None:
        fell_back: list[str] = []
        fanout, hub, start = await small_buffers(broker, fell_back)
        reading = Reader(hub.follow(start, 0.1))
        try:
            burst = [demo_birth(event_id=f"burst-{i}") for i in range(12)]
            response = await anyio.to_thread.run_sync(lambda: client.post(
                "/v1/events/birth:batch", json={"events": burst}, headers=PUBLISHER))
            assert response.status_code == 202, response.text
            got = await reading.read_until(12)
            assert sorted(got) == sorted(e["event_id"] for e in burst)
            # A client that reads what it is given is not dropped to reading on its
            # own because one batch of the hub's was larger than its buffer.
            assert fell_back == []
        finally:
            await fanout.close()

    asyncio.run(run())


def test_an_idle_stream_ticks_for_heartbeats_and_wakes_when_told(api):
    _, broker = api

    async def run() -> None:
        fanout = FanOut(broker.api.feed, anyio.CapacityLimiter(8))
        hub = await fanout.hub(SUB)
        start = Cursor(tuple(broker.api.feed.end_offsets(SUB)))
        try:
            # Nothing to send: an empty chunk after the tick (the route's keep-alive).
            with anyio.fail_after(10):
                assert await anext(hub.follow(start, 0.3)) == ""
            # A stream waiting for a minute is woken by someone else (the key watch,
            # when its key lapses), long before.
            wake = asyncio.Event()
            asyncio.get_running_loop().call_later(0.1, wake.set)
            with anyio.fail_after(10):
                assert await anext(hub.follow(start, 60, wake)) == ""
        finally:
            await fanout.close()

    asyncio.run(run())
