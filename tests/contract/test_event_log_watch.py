"""The event log's optional `AppendWatching` capability, on every backend that offers
it: the watcher is told of each append (by this handle, or by another handle on the same
store, as another process) after it is committed, and no more once it stopped watching.
A backend without it (Kafka) is waited on with `wait` (test_event_log.py)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from broker.log import NewRecord, TopicSpec
from broker.log.port import AppendWatching

if TYPE_CHECKING:
    from tests.contract.conftest import EventLogFactory

GENEROUS_S = 10.0


def test_a_watcher_is_told_of_each_committed_append_until_it_stops(
        event_log_factory: EventLogFactory, event_log) -> None:
    if not isinstance(event_log, AppendWatching):
        pytest.skip(f"the {event_log_factory.backend} log cannot tell; readers wait on it")
    topic = event_log_factory.unique("watched")
    event_log.ensure_topic(TopicSpec(topic))
    told = threading.Event()
    seen: list[int] = []

    def wake() -> None:
        seen.append(len(event_log.read(topic, 0, 0)))
        told.set()

    unwatch = event_log.watch_appends(topic, wake)
    another_process = event_log_factory()
    for writer, expected in ((another_process, 1), (event_log, 2)):
        told.clear()
        writer.append(topic, [NewRecord(b"news")])
        assert told.wait(GENEROUS_S), "the watcher was not told of an append"
        assert max(seen) == expected  # told after the commit: the record is readable

    unwatch()
    told.clear()
    another_process.append(topic, [NewRecord(b"unheard")])
    event_log.append(topic, [NewRecord(b"unheard")])
    time.sleep(1.0)  # past the safety poll (0.5 s), which tells of anything
    assert not told.is_set()
