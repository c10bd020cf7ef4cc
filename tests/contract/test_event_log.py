"""The event-log contract: what every backend of the `EventLog` port guarantees.

Written only against the port (broker/log/port.py); conftest.py runs it per backend.
Topic and group names come from `event_log_factory.unique` because a Kafka cluster is
shared between tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from broker.errors import LogError, TopicMismatchError, UnknownTopicError
from broker.log import Consumer, EventLog, LogRecord, NewRecord, TopicSpec, partition_for
from tests.waiting import Background, eventually

if TYPE_CHECKING:
    from tests.contract.conftest import EventLogFactory

CRASH_WRITER = Path(__file__).with_name("crash_writer.py")
GENEROUS_S = 10.0
"""Upper bound for things that should happen at once; only reached when broken."""


def make_topic(factory: EventLogFactory, log: EventLog, partitions: int = 1) -> str:
    topic = factory.unique("topic")
    log.ensure_topic(TopicSpec(topic, partitions))
    return topic


def poll_until(
    consumers: list[Consumer],
    done: Callable[[], bool],
    on_records: Callable[[Consumer, list[LogRecord]], None],
) -> None:
    def polled_until_done() -> bool:
        if done():
            return True
        for consumer in consumers:
            on_records(consumer, consumer.poll(0.05))
        return done()

    eventually(polled_until_done, timeout=GENEROUS_S, interval=0,
               message="consumers did not get there in time")


# -- topics ----------------------------------------------------------------------------


def test_ensure_topic_creates_once_and_is_idempotent(event_log_factory, event_log):
    topic = event_log_factory.unique("topic")
    spec = TopicSpec(topic, partitions=3)

    event_log.ensure_topic(spec)
    event_log.ensure_topic(spec)

    assert topic in event_log.topics()
    assert event_log.partitions(topic) == 3


@pytest.mark.parametrize(
    "existing, required",
    [
        (TopicSpec("t", partitions=2), TopicSpec("t", partitions=3)),
        (TopicSpec("t", partitions=2), TopicSpec("t", partitions=2, compacted=True)),
        (TopicSpec("t", partitions=1, compacted=True), TopicSpec("t", partitions=1)),
    ],
    ids=["partition count", "becomes compacted", "stops being compacted"],
)
def test_ensure_topic_refuses_a_different_shape(event_log_factory, event_log, existing, required):
    topic = event_log_factory.unique("topic")
    event_log.ensure_topic(TopicSpec(topic, existing.partitions, existing.compacted))

    with pytest.raises(TopicMismatchError):
        event_log.ensure_topic(TopicSpec(topic, required.partitions, required.compacted))
    assert event_log.partitions(topic) == existing.partitions


@pytest.mark.parametrize(
    "use",
    [
        lambda log, topic: log.partitions(topic),
        lambda log, topic: log.append(topic, [NewRecord(b"v")]),
        lambda log, topic: log.read(topic, 0, 0),
        lambda log, topic: log.end_offset(topic, 0),
        lambda log, topic: log.wait({(topic, 0): 0}, 0.01),
        lambda log, topic: log.consumer("group", [topic]),
    ],
    ids=["partitions", "append", "read", "end_offset", "wait", "consumer"],
)
def test_unknown_topic_is_reported(event_log_factory, event_log, use):
    with pytest.raises(UnknownTopicError):
        use(event_log, event_log_factory.unique("missing"))


# -- append and read ---------------------------------------------------------------------


def test_offsets_are_consecutive_per_partition_and_results_follow_input(
    event_log_factory, event_log
):
    topic = make_topic(event_log_factory, event_log, partitions=3)
    records = [NewRecord(f"value {n}".encode(), key=f"subject-{n}".encode()) for n in range(30)]

    results = event_log.append(topic, records[:20]) + event_log.append(topic, records[20:])

    offsets_by_partition = defaultdict(list)
    for result in results:
        offsets_by_partition[result.partition].append(result.offset)
    for offsets in offsets_by_partition.values():
        assert offsets == list(range(len(offsets)))
    for record, result in zip(records, results, strict=True):
        (stored,) = event_log.read(topic, result.partition, result.offset, max_records=1)
        assert stored.value == record.value


def test_same_key_goes_to_kafkas_partition_and_keeps_its_order(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log, partitions=4)
    keys = [f"subject-{n}".encode() for n in range(8)]
    records = [
        NewRecord(f"{key.decode()} #{n}".encode(), key=key) for n in range(5) for key in keys
    ]

    results = event_log.append(topic, records)

    for record, result in zip(records, results, strict=True):
        assert result.partition == partition_for(record.key, 4)
    for key in keys:
        partition = partition_for(key, 4)
        stored = [r.value for r in read_to_end(event_log, topic, partition) if r.key == key]
        assert stored == [f"{key.decode()} #{n}".encode() for n in range(5)]


def test_keys_headers_and_timestamps_round_trip(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log)
    headers = (("event_id", b"\x00\xff\x10"), ("empty", b""), ("dup", b"1"), ("dup", b"2"))
    records = [
        NewRecord(
            b"\x00binary\xff", key=b"\x01key", headers=headers, timestamp_ms=1_700_000_000_123
        ),
        NewRecord(b"", key=None),
    ]

    before_ms = int(time.time() * 1000)
    event_log.append(topic, records)
    after_ms = int(time.time() * 1000)

    first, second = event_log.read(topic, 0, 0)
    assert (first.topic, first.partition, first.offset) == (topic, 0, 0)
    assert (first.key, first.value, first.headers) == (b"\x01key", b"\x00binary\xff", headers)
    assert first.timestamp_ms == 1_700_000_000_123
    assert first.header("dup") == b"1" and first.header("missing") is None
    assert (second.key, second.value, second.headers) == (None, b"", ())
    assert before_ms - 1000 <= second.timestamp_ms <= after_ms + 1000


def test_read_from_an_offset_up_to_max_records(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log)
    event_log.append(topic, [NewRecord(str(n).encode()) for n in range(10)])

    assert [r.offset for r in event_log.read(topic, 0, 4, max_records=3)] == [4, 5, 6]
    assert [r.offset for r in event_log.read(topic, 0, 8)] == [8, 9]
    assert event_log.read(topic, 0, 10) == []
    assert event_log.read(topic, 0, 1000) == []


def test_end_offset_is_the_next_offset_to_be_assigned(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log, partitions=2)
    assert [event_log.end_offset(topic, p) for p in (0, 1)] == [0, 0]

    results = event_log.append(topic, [NewRecord(b"v", key=f"k{n}".encode()) for n in range(9)])

    for partition in (0, 1):
        count = sum(1 for r in results if r.partition == partition)
        assert event_log.end_offset(topic, partition) == count
    (next_result,) = event_log.append(topic, [NewRecord(b"v", key=b"k0")])
    assert next_result.offset == event_log.end_offset(topic, next_result.partition) - 1


def test_end_offsets_are_every_partitions_end_offset(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log, partitions=3)
    assert event_log.end_offsets(topic) == [0, 0, 0]

    event_log.append(topic, [NewRecord(b"v", key=f"k{n}".encode()) for n in range(20)])

    ends = event_log.end_offsets(topic)
    assert ends == [event_log.end_offset(topic, p) for p in range(3)]
    assert sum(ends) == 20


def test_concurrent_appends_get_distinct_consecutive_offsets(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log, partitions=2)

    def append_batches(thread: int) -> None:
        for batch in range(20):
            keys = [f"t{thread}-b{batch}-{n}".encode() for n in range(5)]
            event_log.append(topic, [NewRecord(key, key=key) for key in keys])

    threads = [threading.Thread(target=append_batches, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # A read may return fewer records than asked for (a Kafka fetch ends where the
    # broker's answer does): read each partition up to its end.
    stored = [r for p in (0, 1) for r in read_to_end(event_log, topic, p)]
    assert len(stored) == 4 * 20 * 5
    for partition in (0, 1):
        offsets = [r.offset for r in stored if r.partition == partition]
        assert offsets == list(range(len(offsets)))
    assert {r.value for r in stored} == {r.key for r in stored}



def read_to_end(event_log, topic: str, partition: int) -> list:
    """Every record of one partition, over as many reads as it takes."""
    end = event_log.end_offset(topic, partition)
    records: list = []
    position = 0
    while position < end:
        batch = event_log.read(topic, partition, position, 1000)
        assert batch, f"partition {partition} ended at {len(records)} records, short of {end}"
        records.extend(batch)
        position = batch[-1].offset + 1
    return records

# -- wait ---------------------------------------------------------------------------------


def test_wait_wakes_when_another_thread_appends(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log)
    waiter = Background(lambda: event_log.wait({(topic, 0): 0}, timeout=GENEROUS_S))
    eventually(lambda: waiter.blocked_in(type(event_log).wait),
               message="wait() did not block on an empty partition")

    event_log.append(topic, [NewRecord(b"news")])

    assert waiter.result(timeout=GENEROUS_S) is True
    assert [r.value for r in event_log.read(topic, 0, 0)] == [b"news"]


def test_wait_returns_at_once_when_records_are_already_there(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log)
    event_log.append(topic, [NewRecord(b"a"), NewRecord(b"b")])

    assert event_log.wait({(topic, 0): 1}, timeout=GENEROUS_S) is True


def test_wait_times_out_without_new_records(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log, partitions=2)
    event_log.append(topic, [NewRecord(b"a", key=b"k")])
    positions = {(topic, p): event_log.end_offset(topic, p) for p in (0, 1)}

    assert event_log.wait(positions, timeout=0.1) is False


# -- consumer groups ------------------------------------------------------------------------


def test_committed_offsets_persist_across_reopen(event_log_factory):
    log = event_log_factory()
    topic = make_topic(event_log_factory, log, partitions=2)
    group = event_log_factory.unique("group")
    log.append(topic, [NewRecord(b"v", key=f"k{n}".encode()) for n in range(20)])
    member = log.consumer(group, [topic])
    assert member.committed((topic, 0)) is None

    member.commit({(topic, 0): 3, (topic, 1): 1})
    member.close()
    log.close()

    reopened = event_log_factory().consumer(group, [topic])
    assert reopened.committed((topic, 0)) == 3
    assert reopened.committed((topic, 1)) == 1


def test_two_members_split_partitions_and_see_every_record_once(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log, partitions=4)
    group = event_log_factory.unique("group")
    first, second = event_log.consumer(group, [topic]), event_log.consumer(group, [topic])
    everything = {(topic, p) for p in range(4)}
    poll_until(
        [first, second],
        lambda: (
            first.assignment() | second.assignment() == everything
            and bool(first.assignment())
            and bool(second.assignment())
        ),
        lambda _member, records: (
            pytest.fail(f"no records yet, got {len(records)}") if records else None
        ),
    )
    assert not first.assignment() & second.assignment()

    results = event_log.append(topic, [NewRecord(b"v", key=f"k{n}".encode()) for n in range(40)])
    seen: dict[Consumer, list[tuple[int, int]]] = {first: [], second: []}
    poll_until(
        [first, second],
        lambda: sum(map(len, seen.values())) >= len(results),
        lambda member, records: seen[member].extend((r.partition, r.offset) for r in records),
    )

    assert sorted(seen[first] + seen[second]) == sorted((r.partition, r.offset) for r in results)
    for member, positions in seen.items():
        assert {(topic, partition) for partition, _ in positions} <= member.assignment()


def test_a_member_resumes_from_the_committed_offset(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log)
    group = event_log_factory.unique("group")
    event_log.append(topic, [NewRecord(str(n).encode()) for n in range(10)])
    member = event_log.consumer(group, [topic])
    received: list[LogRecord] = []
    poll_until([member], lambda: len(received) >= 10, lambda _m, records: received.extend(records))
    assert [r.offset for r in received] == list(range(10))

    member.commit({(topic, 0): 6})
    member.close()
    successor = event_log.consumer(group, [topic])
    resumed: list[LogRecord] = []
    poll_until([successor], lambda: len(resumed) >= 4, lambda _m, records: resumed.extend(records))

    assert [r.offset for r in resumed] == [6, 7, 8, 9]


def test_a_new_group_starts_at_the_beginning(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log)
    event_log.append(topic, [NewRecord(b"first"), NewRecord(b"second")])
    member = event_log.consumer(event_log_factory.unique("group"), [topic])

    received: list[LogRecord] = []
    poll_until([member], lambda: len(received) >= 2, lambda _m, records: received.extend(records))

    assert [r.value for r in received] == [b"first", b"second"]


def test_partitions_of_a_closed_member_move_to_the_others(event_log_factory, event_log):
    topic = make_topic(event_log_factory, event_log, partitions=3)
    group = event_log_factory.unique("group")
    stays, leaves = event_log.consumer(group, [topic]), event_log.consumer(group, [topic])
    poll_until([stays, leaves], lambda: bool(leaves.assignment()), lambda _m, _r: None)

    leaves.close()

    everything = {(topic, p) for p in range(3)}
    poll_until([stays], lambda: stays.assignment() == everything, lambda _m, _r: None)


# -- lifecycle and durability ---------------------------------------------------------------


@pytest.mark.parametrize(
    "use",
    [
        lambda log, topic: log.append(topic, [NewRecord(b"v")]),
        lambda log, topic: log.read(topic, 0, 0),
        lambda log, topic: log.ensure_topic(TopicSpec(topic)),
        lambda log, topic: log.consumer("group", [topic]),
    ],
    ids=["append", "read", "ensure_topic", "consumer"],
)
def test_a_closed_log_refuses_use_and_closes_twice(event_log_factory, event_log, use):
    topic = make_topic(event_log_factory, event_log)

    event_log.close()
    event_log.close()

    with pytest.raises(LogError):
        use(event_log, topic)


@pytest.mark.slow
def test_acknowledged_records_survive_kill_9_of_the_writer(event_log_factory):
    log = event_log_factory()
    topic = make_topic(event_log_factory, log, partitions=3)
    log.close()
    writer = subprocess.Popen(
        [sys.executable, str(CRASH_WRITER), json.dumps(event_log_factory.target), topic],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert writer.stdout is not None
        for line in writer.stdout:
            lines.append(line)
            if len(lines) >= 400:
                break
        os.kill(writer.pid, signal.SIGKILL)
        lines.extend(writer.stdout)  # acknowledged before the kill, still in the pipe
    finally:
        writer.kill()
        _, stderr = writer.communicate()
    assert len(lines) >= 400, f"the writer stopped early: {stderr}"

    # A line cut by the kill has no newline; its record was not acknowledged.
    acks = [tuple(map(int, line.split())) for line in lines if line.endswith("\n")]
    reopened = event_log_factory()
    for seq, partition, offset in acks:
        (record,) = reopened.read(topic, partition, offset, max_records=1)
        assert record.offset == offset
        assert record.key == f"subject-{seq % 13}".encode()
        assert record.value == f"record {seq} ".encode() * 16
        assert record.header("seq") == str(seq).encode()
    (after,) = reopened.append(topic, [NewRecord(b"after the crash", key=b"subject-0")])
    acked_in_partition = [offset for _, partition, offset in acks if partition == after.partition]
    assert after.offset > max(acked_in_partition)
