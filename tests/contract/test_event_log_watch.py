"""The event log's optional `AppendWatching` capability, on every backend that offers
it: the watcher is told of each append (by this handle, or by another handle on the same
store, as another process) after it is committed, and no more once it stopped watching.
A backend without it (Kafka) is waited on with `wait` (test_event_log.py)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from broker.errors import LogError
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
    told = threading.Condition()
    seen: list[int] = []
    """How many records each call found readable (calls may also come when nothing
    was appended, as the port allows)."""

    def wake() -> None:
        try:
            readable = len(event_log.read(topic, 0, 0))
        except LogError:  # closed under a late call; a wake must not raise
            return
        with told:
            seen.append(readable)
            told.notify_all()

    unwatch = event_log.watch_appends(topic, wake)
    another_process = event_log_factory()
    for writer, expected in ((another_process, 1), (event_log, 2)):
        writer.append(topic, [NewRecord(b"news")])
        with told:  # a call after the commit finds the record readable
            assert told.wait_for(lambda n=expected: n in seen, GENEROUS_S), \
                f"the watcher was not told of append {expected} (calls found {seen})"

    unwatch()
    with told:
        calls = len(seen)
    another_process.append(topic, [NewRecord(b"unheard")])
    event_log.append(topic, [NewRecord(b"unheard")])
    time.sleep(1.0)  # past the safety poll (0.5 s), which tells of anything
    with told:
        assert len(seen) == calls, "the watcher was still told after it stopped"
