"""Several server-sent-event streams on one subscription, on a real `handoff serve`: they
share one reader in the process, and each still gets every event once, in order, and a
stream resumed with `Last-Event-ID` gets exactly what followed, while the others stay
open."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.demo_broker import demo_birth
from tests.e2e.harness import BrokerProcess, demo_keys
from tests.waiting import eventually

pytestmark = pytest.mark.slow

KEYS = demo_keys()
STREAM = "/v1/subscriptions/eval-births/stream"


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(data_dir=tmp_path_factory.mktemp("shared") / "data").start()
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Stream:
    """A stream read on a thread: its deliveries as (id, event_id), in arrival order."""

    events: list[tuple[str, str]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def ids(self) -> list[str]:
        return [event_id for _, event_id in self.events]


def open_stream(url: str, last_event_id: str | None = None) -> Stream:
    stream = Stream()
    headers = {"Authorization": f"Bearer {KEYS['state-evaluation']}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id

    def read() -> None:
        # The broker stops under streams the test no longer reads.
        with contextlib.suppress(httpx.HTTPError):
            follow()

    def follow() -> None:
        with httpx.stream("GET", url + STREAM, headers=headers,
                          timeout=httpx.Timeout(30, read=120)) as response:
            assert response.status_code == 200
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if stream.done.is_set():
                    return
                if line.startswith(("id:", "data:")):
                    name, _, value = line.partition(": ")
                    fields[name.rstrip(":")] = value
                elif not line and "data" in fields:
                    stream.events.append((fields["id"], json.loads(fields["data"])["event_id"]))
                    fields = {}

    threading.Thread(target=read, daemon=True).start()
    return stream


def publish(url: str, ids: list[str]) -> None:
    for event_id in ids:
        response = httpx.post(url + "/v1/events/birth", json=demo_birth(event_id=event_id),
                              headers={"Authorization": f"Bearer {KEYS['county-general']}"},
                              timeout=30)
        assert response.status_code == 202, response.text


def received(stream: Stream, count: int) -> None:
    eventually(lambda: len(stream.events) >= count, timeout=30, interval=0.05,
               message=lambda: f"the stream got {len(stream.events)} of {count} events")


def test_streams_share_every_event_and_a_resumed_one_gets_exactly_what_followed(broker):
    first, second = open_stream(broker.url), open_stream(broker.url)
    try:
        sent = [f"shared-{i}" for i in range(6)]
        publish(broker.url, sent)
        received(first, 6)
        received(second, 6)
        # The router may route events of different ingress partitions in another order
        # than they were sent; every stream sees the one order of the delivery topic.
        assert sorted(first.ids()) == sorted(sent)
        assert first.events == second.events

        # Resume after the third event while both streams stay open and events flow.
        resumed = open_stream(broker.url, last_event_id=first.events[2][0])
        more = [f"more-{i}" for i in range(6)]
        publish(broker.url, more)
        for stream in (first, second):
            received(stream, 12)
        assert sorted(first.ids()) == sorted(sent + more)
        assert first.events == second.events
        received(resumed, 9)
        assert resumed.events == first.events[3:]
    finally:
        for stream in (first, second):
            stream.done.set()
