"""The Kafka log's round trips, one at a time, beside bare kafka-python doing the same.

A router step on Kafka is a chain of round trips (poll, end offsets of the consent and
watch-list topics, the audit append, the deliveries append, the offsets commit), and a
delivery process wakes through the partition tail. This prints what each costs through
`KafkaEventLog` on a quiet broker, and the bare kafka-python call beside it, so a wait
the adapter adds shows as a gap:

    python bench/kafka_round_trips.py                      # on a Tansu broker of its own
    python bench/kafka_round_trips.py --count 500
    python bench/kafka_round_trips.py --bootstrap-servers kafka-1:9092

The commit is timed the way a router makes it: right after a short batch (an append
and a poll that returns it), when the group member's background thread has just handed
the records over. The last two lines time what a router waits between two batches: from
its commit (`commit`, or `commit_later`, which returns at once) until the record
appended right after it is polled. Figures are wall-clock milliseconds; on a shared
machine they grow with its load, the gaps between the two columns much less.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.summary import percentile  # noqa: E402
from broker.log.kafka import KafkaEventLog  # noqa: E402
from broker.log.port import CommittingLater, NewRecord, TopicSpec  # noqa: E402
from tests.kafka_broker import TansuBroker  # noqa: E402

VALUE = b"v" * 300


def timed(call: Callable[[], object], count: int) -> list[float]:
    """Wall-clock milliseconds of `count` calls."""
    out = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def line(name: str, ours: list[float], bare: list[float] | None = None) -> str:
    def figures(ms: list[float]) -> str:
        return f"p50 {percentile(ms, .5):6.2f}  p99 {percentile(ms, .99):6.2f}"
    text = f"  {name:34s} {figures(ours)} ms"
    return text + (f"   bare kafka-python {figures(bare)} ms" if bare else "")


def member_step(log: KafkaEventLog, writer: KafkaEventLog, count: int, late_s: float = 0.0
                ) -> tuple[list[float], list[float]]:
    """(append through `writer`, as an API process would -> `log`'s member's poll returns
    it; its commit right after) in ms, per short batch. With `late_s`, the caller polls
    that long after the append, as a router still busy with its last batch does: the
    records wait in the member's buffer."""
    member = log.consumer(f"bench-{uuid.uuid4().hex[:8]}", ["ingress"])
    deadline = time.monotonic() + 60
    while not member.assignment() and time.monotonic() < deadline:
        member.poll(0.2)
    member.poll(1.0)
    arrive, commit = [], []
    for _ in range(count):
        started = time.perf_counter()
        writer.append("ingress", [NewRecord(value=VALUE, key=b"k")])
        time.sleep(late_s)
        got = []
        while not got:
            got = member.poll(5.0)
        arrive.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        member.commit({(r.topic, r.partition): r.offset + 1 for r in got})
        commit.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)
    member.close()
    return arrive, commit


def commit_then_next(log: KafkaEventLog, writer: KafkaEventLog, count: int, later: bool
                     ) -> list[float]:
    """(a short batch's commit -> the record appended right after it is polled) in ms:
    what a router waits between two batches, committing with `commit` or, with `later`,
    handing the offsets over with `commit_later`."""
    member = log.consumer(f"bench-{uuid.uuid4().hex[:8]}", ["ingress"])
    assert isinstance(member, CommittingLater)
    deadline = time.monotonic() + 60
    while not member.assignment() and time.monotonic() < deadline:
        member.poll(0.2)
    writer.append("ingress", [NewRecord(value=VALUE, key=b"k")])
    got = member.poll(5.0)
    out = []
    for _ in range(count):
        offsets = {(r.topic, r.partition): r.offset + 1 for r in got}
        started = time.perf_counter()
        if later:
            member.commit_later(offsets)
        else:
            member.commit(offsets)
        writer.append("ingress", [NewRecord(value=VALUE, key=b"k")])
        got = []
        while not got:
            got = member.poll(5.0)
        out.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)
    member.close()
    return out


def bare_commit(servers: str, topic: str, count: int) -> list[float]:
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=0)
    consumer = KafkaConsumer(topic, bootstrap_servers=servers, enable_auto_commit=False,
                             group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
                             fetch_max_wait_ms=10, auto_offset_reset="latest")
    deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(200)
    out = []
    for _ in range(count):
        producer.send(topic, VALUE, key=b"k").get()
        got: dict[TopicPartition, list[object]] = {}
        while not got:
            got = consumer.poll(100)
        offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "", -1)  # type: ignore[attr-defined]
                   for tp, records in got.items()}
        started = time.perf_counter()
        consumer.commit(offsets)
        out.append((time.perf_counter() - started) * 1000)
    consumer.close()
    producer.close()
    return out


def tail_wake(writer: KafkaEventLog, reader: KafkaEventLog, count: int) -> list[float]:
    """Append through one log -> a `wait` on another log (another process's view) wakes."""
    out = []
    for _ in range(count):
        position = reader.end_offset("deliver", 0)
        woke: list[float] = []

        def wait(position: int = position, woke: list[float] = woke) -> None:
            reader.wait({("deliver", 0): position}, 5.0)
            woke.append(time.perf_counter())

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.005)
        started = time.perf_counter()
        writer.append("deliver", [NewRecord(value=VALUE, key=b"k")])
        waiter.join()
        out.append((woke[0] - started) * 1000)
    return out


def run(servers: str, count: int) -> None:
    prefix = f"rt-{uuid.uuid4().hex[:8]}."
    log = KafkaEventLog(servers, topic_prefix=prefix)
    other = KafkaEventLog(servers, topic_prefix=prefix)
    for name, partitions in (("ingress", 4), ("consent", 4), ("deliver", 1), ("audit", 1)):
        log.ensure_topic(TopicSpec(name, partitions=partitions))
    one = [NewRecord(value=VALUE, key=b"k")]
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=0,
                             enable_idempotence=True)
    probe = KafkaConsumer(bootstrap_servers=servers)
    consent = [TopicPartition(f"{prefix}consent", p) for p in range(4)]

    def bare_append() -> None:
        future = producer.send(f"{prefix}audit", VALUE, key=b"k", partition=0)
        producer.flush()
        future.get()

    print(f"Kafka log round trips, {count} each, wall clock:")
    print(line("append, 1 record", timed(lambda: log.append("audit", one), count),
               timed(bare_append, count)))
    print(line("append_all, 3 topics x 5 records",
               timed(lambda: log.append_all([("audit", one * 5), ("deliver", one * 5),
                                             ("consent", one * 5)]), count)))
    print(line("end_offsets, 4 partitions", timed(lambda: log.end_offsets("consent"), count),
               timed(lambda: probe.end_offsets(consent), count)))
    arrive, commit = member_step(log, other, count)
    print(line("append -> group member poll", arrive))
    print(line("commit after a short batch", commit,
               bare_commit(servers, f"{prefix}ingress", count)))
    _, late = member_step(log, other, count, late_s=0.015)
    print(line("commit, batch polled 15 ms late", late))
    print(line("append -> other process's wait", tail_wake(log, other, count)))
    print(line("commit -> next batch polled", commit_then_next(log, other, count, False)))
    print(line("commit_later -> next batch polled",
               commit_then_next(log, other, count, True)))
    producer.close()
    probe.close()
    other.close()
    log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args()
    if args.bootstrap_servers:
        run(args.bootstrap_servers, args.count)
        return
    with TansuBroker() as broker:
        run(broker.bootstrap_servers, args.count)


if __name__ == "__main__":
    main()
