"""The event-log contract for `append_all`: several topics appended at once, as the
router writes every subscription's views of a batch (conftest.py runs it per backend)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from broker.errors import LogError, UnknownTopicError
from broker.log import EventLog, NewRecord, TopicSpec, partition_for

if TYPE_CHECKING:
    from tests.contract.conftest import EventLogFactory


def _topic(factory: EventLogFactory, log: EventLog, partitions: int) -> str:
    topic = factory.unique("topic")
    log.ensure_topic(TopicSpec(topic, partitions))
    return topic


def test_each_topic_gets_its_records_with_results_per_batch_in_order(
        event_log_factory, event_log):
    views = _topic(event_log_factory, event_log, partitions=3)
    alerts = _topic(event_log_factory, event_log, partitions=1)
    keyed = [NewRecord(f"view {n}".encode(), key=f"subject-{n % 4}".encode())
             for n in range(12)]
    unkeyed = [NewRecord(f"alert {n}".encode()) for n in range(3)]

    view_results, alert_results, empty = event_log.append_all(
        [(views, keyed), (alerts, unkeyed), (views, [])])

    assert empty == []
    assert [r.partition for r in view_results] == [partition_for(r.key, 3) for r in keyed]
    assert [(r.partition, r.offset) for r in alert_results] == [(0, 0), (0, 1), (0, 2)]
    for record, result in zip(keyed, view_results, strict=True):
        (stored,) = event_log.read(views, result.partition, result.offset, max_records=1)
        assert (stored.key, stored.value) == (record.key, record.value)
    assert sum(event_log.end_offsets(views)) == 12
    # Offsets go on from where the batch left them.
    (after,) = event_log.append(alerts, [NewRecord(b"alert 3")])
    assert after.offset == 3


def test_the_same_topic_twice_keeps_offsets_consecutive(event_log_factory, event_log):
    topic = _topic(event_log_factory, event_log, partitions=1)

    first, second = event_log.append_all(
        [(topic, [NewRecord(b"a"), NewRecord(b"b")]), (topic, [NewRecord(b"c")])])

    assert [r.offset for r in first + second] == [0, 1, 2]
    assert [r.value for r in event_log.read(topic, 0, 0)] == [b"a", b"b", b"c"]


@pytest.mark.parametrize("bad", ["value", "topic"])
def test_a_bad_batch_anywhere_writes_none_of_them(event_log_factory, event_log, bad):
    good = _topic(event_log_factory, event_log, partitions=1)
    other = (_topic(event_log_factory, event_log, partitions=1) if bad == "value"
             else event_log_factory.unique("missing"))
    wrong = NewRecord("not bytes", key=None)  # type: ignore[arg-type]

    with pytest.raises(LogError if bad == "value" else UnknownTopicError):
        event_log.append_all([(good, [NewRecord(b"kept back")]),
                              (other, [wrong] if bad == "value" else [NewRecord(b"x")])])

    assert event_log.end_offsets(good) == [0]


def test_nothing_to_append_appends_nothing(event_log_factory, event_log):
    topic = _topic(event_log_factory, event_log, partitions=2)

    assert event_log.append_all([]) == []
    assert event_log.append_all([(topic, [])]) == [[]]
    assert event_log.end_offsets(topic) == [0, 0]
