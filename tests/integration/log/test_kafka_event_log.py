"""What the Kafka event log does beyond the port contract (tests/contract/ covers that).

Runs against the session's Tansu broker (tests/kafka_broker.py); topic and group names
are unique per test because the broker is shared.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic

from broker.config import KafkaSettings
from broker.errors import LogError, LogUnavailableError, TopicMismatchError
from broker.log import NewRecord, TopicSpec, partition_for
from broker.log.kafka import KafkaEventLog
from tests.integration.log.conftest import unique
from tests.kafka_broker import TansuBroker, free_port
from tests.waiting import Background, eventually

pytestmark = pytest.mark.slow

GROUP_MEMBER = Path(__file__).with_name("kafka_group_member.py")
GENEROUS_S = 20.0
"""Upper bound for a group to settle (Tansu holds each join round for about 3 s)."""


@pytest.fixture
def admin(kafka_broker: TansuBroker) -> Iterator[KafkaAdminClient]:
    """A plain kafka-python admin client, to see the cluster as other tools do."""
    client = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    yield client
    client.close()


# -- names ------------------------------------------------------------------------------


def test_topics_and_groups_carry_the_prefix_on_kafka_only(open_log, admin):
    log = open_log()
    topic, group = unique("events.birth"), unique("router")
    log.ensure_topic(TopicSpec(topic, partitions=2))
    log.append(topic, [NewRecord(b"v", key=b"subject-1")])

    member = log.consumer(group, [topic])
    member.commit({(topic, partition_for(b"subject-1", 2)): 1})

    assert f"handoff.{topic}" in admin.list_topics()
    assert topic not in admin.list_topics()
    assert topic in log.topics()
    assert not any(name.startswith("handoff.") for name in log.topics())
    offsets = admin.list_group_offsets({f"handoff.{group}": None})[f"handoff.{group}"]
    assert offsets[TopicPartition(f"handoff.{topic}", partition_for(b"subject-1", 2))].offset == 1


def test_settings_name_the_cluster_and_the_prefix(kafka_broker, admin):
    settings = KafkaSettings(bootstrap_servers=kafka_broker.bootstrap_servers, topic_prefix="hs.")
    topic = unique("consents")
    log = KafkaEventLog.from_settings(settings)
    try:
        log.ensure_topic(TopicSpec(topic, compacted=True))
    finally:
        log.close()

    assert f"hs.{topic}" in admin.list_topics()


def test_another_prefix_is_another_installation(open_log):
    topic = unique("events.birth")
    ours, theirs = open_log(), open_log(topic_prefix=unique("other") + ".")
    ours.ensure_topic(TopicSpec(topic))

    assert topic in ours.topics()
    assert topic not in theirs.topics()


def test_a_topic_name_kafka_cannot_hold_is_refused(open_log):
    with pytest.raises(LogError, match="cannot be a Kafka topic name"):
        open_log().ensure_topic(TopicSpec("deliver/hv births"))


# -- topics made outside Handoff ----------------------------------------------------------


@pytest.mark.parametrize(
    "created, required, advice",
    [
        ({"partitions": 2, "cleanup.policy": "delete"}, TopicSpec("t", 4), "create the topic"),
        (
            {"partitions": 1, "cleanup.policy": "delete"},
            TopicSpec("t", 1, compacted=True),
            "cleanup.policy=compact",
        ),
        (
            {"partitions": 1, "cleanup.policy": "compact"},
            TopicSpec("t", 1),
            "cleanup.policy=delete",
        ),
    ],
    ids=["partition count", "not compacted", "compacted"],
)
def test_a_mismatched_topic_is_refused_with_advice(open_log, admin, created, required, advice):
    topic = unique("registry")
    admin.create_topics(
        [
            NewTopic(
                f"handoff.{topic}",
                created["partitions"],
                1,
                topic_configs={"cleanup.policy": created["cleanup.policy"]},
            )
        ]
    )

    with pytest.raises(TopicMismatchError) as refused:
        open_log().ensure_topic(TopicSpec(topic, required.partitions, required.compacted))

    assert f"handoff.{topic}" in str(refused.value)
    assert advice in str(refused.value)


def test_a_matching_topic_made_elsewhere_is_used_as_it_is(open_log, admin):
    topic = unique("events.referral")
    admin.create_topics(
        [NewTopic(f"handoff.{topic}", 3, 1, topic_configs={"cleanup.policy": "delete"})]
    )
    log = open_log()

    log.ensure_topic(TopicSpec(topic, partitions=3))

    assert log.partitions(topic) == 3


# -- offsets and waiting across clients ---------------------------------------------------


def test_another_client_sees_the_end_of_a_multi_record_batch(open_log):
    topic = unique("events.birth")
    writer, reader = open_log(), open_log()
    writer.ensure_topic(TopicSpec(topic))

    writer.append(topic, [NewRecord(str(n).encode()) for n in range(7)])

    # Tansu answers ListOffsets with the last batch's base offset + 1 (here 1); the
    # adapter must report the true end all the same.
    assert reader.end_offset(topic, 0) == 7
    assert [r.value for r in reader.read(topic, 0, 5)] == [b"5", b"6"]


def test_wait_sees_an_append_by_another_client(open_log):
    topic = unique("deliver.hv-births")
    writer, waiter = open_log(), open_log()
    writer.ensure_topic(TopicSpec(topic))
    waiting = Background(lambda: waiter.wait({(topic, 0): 0}, timeout=GENEROUS_S))
    eventually(lambda: waiting.blocked_in(KafkaEventLog.wait),
               message="wait() did not block on an empty partition")

    writer.append(topic, [NewRecord(b"news")])

    assert waiting.result(timeout=GENEROUS_S) is True


def test_waiters_on_several_topics_see_appends_by_another_client(open_log):
    # A delivery process streams several subscriptions at once; one request for the end
    # offsets of partitions of several topics is answered only in part by Tansu.
    topics = [unique("deliver.hv-births"), unique("deliver.eval-births")]
    writer, waiter = open_log(), open_log()
    for topic in topics:
        writer.ensure_topic(TopicSpec(topic))

    def wait_on(topic: str) -> Background[bool]:
        return Background(lambda: waiter.wait({(topic, 0): 0}, timeout=GENEROUS_S))

    waiting = {topic: wait_on(topic) for topic in topics}
    eventually(lambda: all(w.blocked_in(KafkaEventLog.wait) for w in waiting.values()),
               message="the waiters did not block on their empty partitions")
    for topic in topics:
        writer.append(topic, [NewRecord(b"news")])

    assert {t: w.result(timeout=GENEROUS_S) for t, w in waiting.items()} == \
        {topic: True for topic in topics}
    assert waiter.end_offset(topics[1], 0) == 1


def test_a_waiter_reads_the_records_that_woke_it(open_log):
    topic = unique("deliver.hv-births")
    writer, waiter = open_log(), open_log()
    writer.ensure_topic(TopicSpec(topic))
    waiting = Background(lambda: waiter.wait({(topic, 0): 0}, timeout=GENEROUS_S))
    eventually(lambda: waiting.blocked_in(KafkaEventLog.wait),
               message="wait() did not block on an empty partition")

    writer.append(topic, [NewRecord(str(n).encode()) for n in range(5)])

    assert waiting.result(timeout=GENEROUS_S) is True

    assert [r.value for r in waiter.read(topic, 0, 0, max_records=2)] == [b"0", b"1"]
    assert [r.offset for r in waiter.read(topic, 0, 3)] == [3, 4]
    assert waiter.read(topic, 0, 5) == []
    writer.append(topic, [NewRecord(b"5")])
    assert waiter.wait({(topic, 0): 5}, timeout=GENEROUS_S) is True
    assert [r.value for r in waiter.read(topic, 0, 5)] == [b"5"]


def test_a_waiter_with_an_old_cursor_wakes_at_once_and_reads_from_it(open_log):
    topic = unique("deliver.hv-births")
    writer, waiter = open_log(), open_log()
    writer.ensure_topic(TopicSpec(topic))
    for start in range(0, 3000, 500):
        writer.append(topic, [NewRecord(str(n).encode()) for n in range(start, start + 500)])

    assert waiter.wait({(topic, 0): 10}, timeout=GENEROUS_S) is True
    assert [r.value for r in waiter.read(topic, 0, 10, max_records=3)] == [b"10", b"11", b"12"]
    # Then it follows what comes next, not the backlog.
    waiting = Background(lambda: waiter.wait({(topic, 0): 3000}, timeout=GENEROUS_S))
    eventually(lambda: waiting.blocked_in(KafkaEventLog.wait),
               message="wait() did not block at the end of the partition")
    writer.append(topic, [NewRecord(b"news")])
    assert waiting.result(timeout=GENEROUS_S) is True
    assert [r.value for r in waiter.read(topic, 0, 3000)] == [b"news"]


def test_a_waiter_past_the_end_waits_for_its_offset(open_log):
    # A cursor from elsewhere may point past the end: the wait is for a record there,
    # not for the next one, and following it does not start over from the beginning.
    topic = unique("deliver.hv-births")
    writer, waiter = open_log(), open_log()
    writer.ensure_topic(TopicSpec(topic))
    writer.append(topic, [NewRecord(b"a"), NewRecord(b"b")])
    waiting = Background(lambda: waiter.wait({(topic, 0): 10}, timeout=1.5))
    eventually(lambda: waiting.blocked_in(KafkaEventLog.wait),
               message="wait() did not block on a cursor past the end")
    writer.append(topic, [NewRecord(b"c")])

    assert waiting.result(timeout=GENEROUS_S) is False
    assert waiter.end_offset(topic, 0) == 3
    assert [r.value for r in waiter.read(topic, 0, 1)] == [b"b", b"c"]


# -- idle cost ------------------------------------------------------------------------------


def cpu_share_over(seconds: float) -> float:
    """Share of one core this test process used over the next `seconds`."""
    before, started = os.times(), time.monotonic()
    time.sleep(seconds)
    after = os.times()
    used = (after.user + after.system) - (before.user + before.system)
    return used / (time.monotonic() - started)


@pytest.mark.slow
def test_an_idle_log_that_appended_to_topics_made_at_different_times_stays_idle(open_log):
    # A process writes to topics that existed when it connected and to topics made
    # later (its first publish of a type, the idempotency index). kafka-python's
    # producer then forgot the older topics' leaders and asked for metadata in a busy
    # loop: an idle API process used a sixth of a core, a router a third.
    early = unique("events.birth")
    creator = open_log()
    creator.ensure_topic(TopicSpec(early, partitions=2))
    log = open_log()
    log.append(early, [NewRecord(b"v", key=b"subject-1")])
    later = unique("_accepted")
    log.ensure_topic(TopicSpec(later, partitions=2, compacted=True))
    log.append(later, [NewRecord(b"v", key=b"subject-2")])
    time.sleep(0.5)

    assert cpu_share_over(3.0) < 0.05


@pytest.mark.slow
def test_a_process_waiting_on_partitions_nobody_writes_stays_idle(open_log):
    # A delivery process with streams open and nothing to deliver: its waits follow
    # the partitions with fetches the broker holds up to the idle fetch wait.
    topics = [unique("deliver.hv-births"), unique("deliver.eval-births")]
    writer, waiter = open_log(), open_log()
    for topic in topics:
        writer.ensure_topic(TopicSpec(topic))
    stop = threading.Event()

    def stream(topic: str) -> None:
        while not stop.is_set():
            waiter.wait({(topic, 0): 0}, timeout=0.5)

    streams = [threading.Thread(target=stream, args=(t,)) for t in topics * 2]
    for thread in streams:
        thread.start()
    try:
        time.sleep(2.0)    # the fetch wait grows after a second without records
        assert cpu_share_over(3.0) < 0.05
    finally:
        stop.set()
        for thread in streams:
            thread.join()


@pytest.mark.slow
def test_io_that_waits_for_the_interpreter_lock_is_not_logged_as_blocking(open_log, caplog):
    # A router encoding a batch holds the interpreter lock while its Kafka I/O thread
    # waits its turn; kafka-python timed that wait as a step "blocking the event loop"
    # and logged a warning for it. (sum over a range runs in C, holding the lock.)
    log = open_log()
    topic = unique("deliver.hv-births")
    log.ensure_topic(TopicSpec(topic))
    caplog.set_level(logging.WARNING)
    for _ in range(5):
        busy = threading.Thread(target=lambda: sum(range(30_000_000)))
        busy.start()
        log.append(topic, [NewRecord(b"v")])
        log.end_offset(topic, 0)
        busy.join()

    assert log.end_offset(topic, 0) == 5
    assert "blocking the event loop" not in caplog.text


# -- consumer groups ------------------------------------------------------------------------


def poll_until(members, done, on_records=lambda _m, _r: None) -> None:
    def polled_until_done() -> bool:
        if done():
            return True
        for member in members:
            on_records(member, member.poll(0.05))
        return done()

    eventually(polled_until_done, timeout=GENEROUS_S, interval=0,
               message="the group did not settle in time")


def test_a_member_does_not_commit_partitions_it_lost(open_log):
    log = open_log()
    topic, group = unique("events.birth"), unique("router")
    log.ensure_topic(TopicSpec(topic, partitions=2))
    first = log.consumer(group, [topic])
    poll_until([first], lambda: len(first.assignment()) == 2)

    second = log.consumer(group, [topic])
    poll_until(
        [first, second], lambda: len(first.assignment()) == 1 and len(second.assignment()) == 1
    )
    (lost,) = second.assignment()

    with pytest.raises(LogUnavailableError, match="moved"):
        first.commit({lost: 5})
    assert first.committed(lost) is None
    second.commit({lost: 5})
    assert first.committed(lost) == 5


def test_a_member_fetches_with_the_configured_wait_not_kafka_pythons_half_second(open_log):
    # kafka-python's consumers hold each fetch up to 500 ms; Tansu answers only when the
    # wait is over, so a router member kept that long a wait added it to every event.
    log = open_log(fetch_wait_ms=30, idle_fetch_wait_ms=120)
    topic, group = unique("events.birth"), unique("router")
    log.ensure_topic(TopicSpec(topic, partitions=2))
    member = log.consumer(group, [topic])
    poll_until([member], lambda: len(member.assignment()) == 2)

    def fetch_wait() -> int:
        return member._consumer._fetcher.config["fetch_max_wait_ms"]  # type: ignore[attr-defined,no-any-return]

    time.sleep(2.0)                      # idle for over a second: the wait grows
    assert fetch_wait() == 120
    log.append(topic, [NewRecord(b"v", key=b"k")])
    received: list[object] = []
    poll_until([member], lambda: bool(received), lambda _m, records: received.extend(records))
    member.poll(0.3)                     # done with them: the member fetches again
    assert fetch_wait() == 30            # records came: short again


def test_an_owned_partitions_end_comes_from_the_members_fetches(open_log):
    # A router asks for the end of every partition it owns twice a second (its lag); a
    # request per partition took a third of its time. The member's fetches carry the
    # end, including appends by other processes.
    routing, writer = open_log(), open_log()
    topic, group = unique("events.birth"), unique("router")
    routing.ensure_topic(TopicSpec(topic, partitions=2))
    member = routing.consumer(group, [topic])
    poll_until([member], lambda: len(member.assignment()) == 2)
    writer.append(topic, [NewRecord(str(n).encode(), key=b"k") for n in range(5)])
    partition = partition_for(b"k", 2)

    received: list[object] = []
    poll_until([member], lambda: len(received) == 5,
               lambda _m, records: received.extend(records))
    asked: list[object] = []
    ask_cluster = routing._reader.end_offsets
    routing._reader.end_offsets = lambda tps: asked.append(tps) or ask_cluster(tps)  # type: ignore[method-assign]

    def known_without_asking(end: int) -> bool:
        asked.clear()
        return routing.end_offset(topic, partition) == end and not asked

    eventually(lambda: known_without_asking(5), interval=0.2,
               message="the owner did not learn the end of the partition from its fetches")
    writer.append(topic, [NewRecord(b"more", key=b"k")])    # another process appends
    eventually(lambda: known_without_asking(6), interval=0.2,
               message="the owner's fetches did not report another process's append")

    member.close()                       # no longer owned: asked of the cluster
    asked.clear()
    assert routing.end_offset(topic, partition) == 6
    assert asked


def test_members_in_two_processes_split_partitions(kafka_broker, open_log):
    log = open_log()
    topic, group = unique("events.enrollment"), unique("router")
    log.ensure_topic(TopicSpec(topic, partitions=4))
    members = [_start_member(kafka_broker, topic, group) for _ in range(2)]
    events: queue.Queue[tuple[int, str, str]] = queue.Queue()
    for index, member in enumerate(members):
        assert member.stdout is not None
        threading.Thread(target=_relay, args=(index, member.stdout, events), daemon=True).start()
    try:
        assignments: dict[int, set[tuple[str, int]]] = {0: set(), 1: set()}
        everything = {(topic, p) for p in range(4)}
        _collect(
            events,
            lambda: (
                assignments[0] | assignments[1] == everything
                and not assignments[0] & assignments[1]
            ),
            assignments,
            {},
        )

        results = log.append(topic, [NewRecord(b"v", key=f"k{n}".encode()) for n in range(40)])
        received: dict[int, list[tuple[int, int]]] = {0: [], 1: []}
        _collect(
            events, lambda: sum(map(len, received.values())) >= len(results), assignments, received
        )
    finally:
        for member in members:
            assert member.stdin is not None
            member.stdin.close()
        for member in members:
            member.wait(timeout=GENEROUS_S)

    assert all(assignments.values())
    assert sorted(received[0] + received[1]) == sorted((r.partition, r.offset) for r in results)
    for index, records in received.items():
        assert {(topic, partition) for partition, _ in records} <= assignments[index]


def _start_member(broker: TansuBroker, topic: str, group: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(GROUP_MEMBER), broker.bootstrap_servers, "handoff.", group, topic],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _relay(index: int, stream: IO[str], events: queue.Queue[tuple[int, str, str]]) -> None:
    for line in stream:
        kind, _, rest = line.strip().partition(" ")
        events.put((index, kind, rest))


def _collect(events, done, assignments, received) -> None:
    def collected_until_done() -> bool:
        if done():
            return True
        try:
            index, kind, rest = events.get(timeout=0.1)
        except queue.Empty:
            return False
        if kind == "assignment":
            assignments[index] = {(t, p) for t, p in json.loads(rest)}
        elif kind == "record":
            partition, offset = map(int, rest.split())
            received.setdefault(index, []).append((partition, offset))
        return done()

    eventually(collected_until_done, timeout=GENEROUS_S, interval=0,
               message=lambda: f"members did not get there in time: {assignments}")


# -- an unreachable cluster -----------------------------------------------------------------


def test_an_unreachable_cluster_is_reported_with_its_address():
    servers = f"127.0.0.1:{free_port()}"

    with pytest.raises(LogUnavailableError) as refused:
        KafkaEventLog(servers, connect_timeout_s=1.0, request_timeout_s=2.0)

    assert servers in str(refused.value)
    assert "bootstrap_servers" in str(refused.value)


@pytest.mark.parametrize(
    "use",
    [
        lambda log, topic: log.append(topic, [NewRecord(b"v")]),
        lambda log, topic: log.read(topic, 0, 0),
        lambda log, topic: log.end_offset(topic, 0),
        lambda log, topic: log.ensure_topic(TopicSpec(unique("later"))),
    ],
    ids=["append", "read", "end_offset", "ensure_topic"],
)
def test_a_broker_that_goes_away_makes_calls_fail_as_retriable(use):
    with TansuBroker() as broker:
        log = KafkaEventLog(broker.bootstrap_servers, connect_timeout_s=1.0, request_timeout_s=2.0)
        topic = unique("events.birth")
        log.ensure_topic(TopicSpec(topic))
        log.append(topic, [NewRecord(b"first")])
    try:
        with pytest.raises(LogUnavailableError) as refused:
            use(log, topic)
        assert broker.bootstrap_servers in str(refused.value)
    finally:
        log.close()
