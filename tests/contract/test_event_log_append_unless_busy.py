"""The event log's optional `AppendingUnlessBusy` capability, on every backend that
offers it: an append that starts at once or writes nothing, as group commit makes from
the event loop. A backend without it (Kafka) is appended to from a thread.

Each test first appends to its topic the usual way, as a running broker has: a log
that must write something else before a topic's first record (encryption at rest
stores the period's data key) says busy until then."""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING

import pytest

from broker.log import EventLog, NewRecord, TopicSpec
from broker.log.port import AppendingUnlessBusy

if TYPE_CHECKING:
    from tests.contract.conftest import EventLogFactory


def _unless_busy(factory: EventLogFactory, log: EventLog) -> AppendingUnlessBusy:
    if not isinstance(log, AppendingUnlessBusy):
        pytest.skip(f"the {factory.backend} log is appended to from a thread")
    return log


def _hold_the_store(factory: EventLogFactory) -> sqlite3.Connection:
    """Another process's writer, in the middle of a transaction."""
    assert factory.target["backend"] == "embedded"
    holder = sqlite3.connect(factory.target["path"], isolation_level=None,
                             check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def _topic(factory: EventLogFactory, log: EventLog, partitions: int = 1) -> str:
    topic = factory.unique("births")
    log.ensure_topic(TopicSpec(topic, partitions=partitions))
    log.append(topic, [NewRecord(b"before", key=b"k0")])
    return topic


def test_a_free_log_appends_as_append_does(event_log_factory, event_log) -> None:
    log = _unless_busy(event_log_factory, event_log)
    topic = _topic(event_log_factory, event_log, partitions=2)
    records = [NewRecord(f"v{n}".encode(), key=f"k{n}".encode()) for n in range(5)]

    results = log.append_unless_busy(topic, records)

    assert results is not None and len(results) == 5
    assert [event_log.read(topic, r.partition, r.offset, 1)[0].value for r in results] \
        == [r.value for r in records]
    assert sum(event_log_factory().end_offsets(topic)) == 6   # durable: another handle


def test_a_log_another_writer_holds_writes_nothing_and_says_so(event_log_factory,
                                                               event_log) -> None:
    log = _unless_busy(event_log_factory, event_log)
    topic = _topic(event_log_factory, event_log)
    holder = _hold_the_store(event_log_factory)
    try:
        assert log.append_unless_busy(topic, [NewRecord(b"v")]) is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert event_log.end_offsets(topic) == [1]
    # Free again: the same append goes through, at the offset nothing took.
    results = log.append_unless_busy(topic, [NewRecord(b"v")])
    assert results is not None and [r.offset for r in results] == [1]


def test_a_plain_append_still_waits_for_the_writer_to_finish(event_log_factory,
                                                             event_log) -> None:
    log = _unless_busy(event_log_factory, event_log)
    topic = _topic(event_log_factory, event_log)
    holder = _hold_the_store(event_log_factory)
    released = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    released.start()
    try:
        assert log.append_unless_busy(topic, [NewRecord(b"first")]) is None
        event_log.append(topic, [NewRecord(b"waited")])   # blocks until the commit
    finally:
        released.join()
        holder.close()
    assert [r.value for r in event_log.read(topic, 0, 0)] == [b"before", b"waited"]
