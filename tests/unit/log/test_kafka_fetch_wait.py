"""How long a following consumer's fetches wait at the broker (no I/O)."""

from __future__ import annotations

import inspect

from kafka import KafkaConsumer
from kafka.consumer.fetcher import Fetcher

from broker.log.kafka_fetch_wait import FetchWait, set_fetch_wait


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_wait_stays_short_while_records_come_in_bursts():
    clock = Clock()
    wait = FetchWait(busy_ms=10, idle_ms=250, grace_s=1.0, clock=clock)
    for _ in range(20):
        # A router appends a batch every 80 ms; the fetches in between bring nothing.
        for _ in range(7):
            clock.now += 0.010
            assert wait.note(brought_records=False) == 10
        clock.now += 0.010
        assert wait.note(brought_records=True) == 10


def test_the_wait_grows_to_the_idle_wait_when_nothing_comes_and_drops_on_records():
    clock = Clock()
    wait = FetchWait(busy_ms=10, idle_ms=250, grace_s=1.0, clock=clock)
    seen = []
    for _ in range(200):
        clock.now += wait.current_ms / 1000
        seen.append(wait.note(brought_records=False))

    assert seen[-1] == 250
    assert seen == sorted(seen)               # never shrinks without records
    assert {10, 20, 40, 80, 160, 250} <= set(seen)
    assert wait.note(brought_records=True) == 10


def test_polling_in_slices_shorter_than_the_wait_does_not_grow_it_faster():
    clock = Clock()
    wait = FetchWait(busy_ms=125, idle_ms=1000, grace_s=0.0, clock=clock)
    clock.now += 0.125
    assert wait.note(brought_records=False) == 250
    for _ in range(3):                   # slices of 62.5 ms within one 250 ms fetch
        clock.now += 0.0625
        assert wait.note(brought_records=False) == 250
    clock.now += 0.0625
    assert wait.note(brought_records=False) == 500


def test_the_wait_reaches_the_fetch_requests_kafka_python_builds():
    # If a kafka-python upgrade moves where fetch requests take their wait from,
    # set_fetch_wait would silently stop working: this fails instead.
    assert "max_wait_ms=self.config['fetch_max_wait_ms']" in inspect.getsource(Fetcher)
    consumer = KafkaConsumer.__new__(KafkaConsumer)   # not connected: only its fetcher
    consumer._fetcher = Fetcher.__new__(Fetcher)
    consumer._fetcher.config = dict(Fetcher.DEFAULT_CONFIG)

    set_fetch_wait(consumer, 40)

    assert consumer._fetcher.config["fetch_max_wait_ms"] == 40
