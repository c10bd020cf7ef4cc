"""CPU per event of the router's "log append" stage alone, replayed.

    python bench/log_append_cpu.py                 # one step of 500 births, 30 replays
    python bench/log_append_cpu.py --replays 60
    python bench/log_append_cpu.py --kafka         # into a Kafka log (Tansu)

Builds the embedded broker of `bench/router_step_cpu.py --linked` (bench/inprocess.py),
routes one full step of births (one mother, linkage on) while keeping what the step
hands `SqliteEventLog.append_all_and_commit` (the views of three subscriptions, with
their headers, and the ingress offsets), then appends the same records again, a step's
worth per replay, to the same log, with the cyclic collector off, timing each replay on
this process's CPU clock: placing the records, packing their headers, the insert and
the commit. Then, apart, the headers alone (`encode_headers` of every record of the
step), the part of the stage that is Python rather than SQLite. Prints the best,
tenth-best and median replay of each in µs per event (three delivery records each).
The whole step (`bench/router_step_cpu.py --stages`) is too noisy on a shared machine to
show a change of a few µs in this stage; replaying the same records is not. Asserts
nothing.

With `--kafka` the same records are appended with `KafkaEventLog.append_all` to a Tansu
broker started for the run (memory storage), as a router on Kafka appends its views (it
hands the offsets over afterwards, `commit_later`, not timed here): the figure is this
process's CPU, the adapter's and the kafka-python producer's (its I/O thread included),
not Tansu's. The headers line is then left out (Kafka takes headers as they are).
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.replay import captured_step, replay_flags, summary  # noqa: E402
from broker.log.kafka import KafkaEventLog  # noqa: E402
from broker.log.port import Consumer, NewRecord, TopicPartition, TopicSpec  # noqa: E402
from broker.log.sqlite import SqliteEventLog  # noqa: E402
from broker.log.sqlite_storage import encode_headers  # noqa: E402

Appends = Sequence[tuple[str, Sequence[NewRecord]]]


@contextlib.contextmanager
def kafka_log() -> Iterator[KafkaEventLog]:
    """A Kafka event log on a Tansu broker of its own, closed with it."""
    from tests.kafka_broker import TansuBroker

    with TansuBroker() as broker:
        log = KafkaEventLog(broker.bootstrap_servers)
        try:
            yield log
        finally:
            log.close()


def replay_on_kafka(source: SqliteEventLog, kept: Sequence[Appends], events: int,
                    replays: int) -> None:
    """Append `kept` to a Kafka log `replays` times and print the CPU per event."""
    with kafka_log() as log:
        for topic in {topic for appends in kept for topic, _records in appends}:
            log.ensure_topic(TopicSpec(topic, partitions=source.partitions(topic)))
        for appends in kept:   # a warm-up: metadata, connections, batches
            log.append_all(appends)
        clock = time.process_time
        appended: list[float] = []
        gc.collect()
        gc.disable()
        try:
            for _ in range(replays):
                started = clock()
                for appends in kept:
                    log.append_all(appends)
                appended.append((clock() - started) / events)
        finally:
            gc.enable()
    records = sum(len(records) for appends in kept for _topic, records in appends)
    print(f"KafkaEventLog.append_all replayed into Tansu, {events:,} births ({records:,} "
          f"records) x {replays}: {summary(appended)}")


def main() -> None:
    parser = replay_flags(__doc__, replays=30)
    parser.add_argument("--kafka", action="store_true",
                        help="append to a Kafka log on a Tansu broker instead")
    args = parser.parse_args()
    with captured_step(SqliteEventLog, "append_all_and_commit", args.births) as (_, calls):
        log = cast(SqliteEventLog, calls[0][0])
        kept = [(cast(Appends, arguments[0]), cast(Consumer, arguments[1]),
                 cast(Mapping[TopicPartition, int], arguments[2])) for _, arguments in calls]
        if args.kafka:
            replay_on_kafka(log, [appends for appends, _c, _o in kept], args.births,
                            args.replays)
            return
        headers = [record.headers for appends, _c, _o in kept
                   for _topic, records in appends for record in records]
        events = args.births
        clock = time.process_time
        appended: list[float] = []
        packed: list[float] = []
        gc.collect()
        gc.disable()
        try:
            for _ in range(args.replays):
                started = clock()
                for appends, consumer, offsets in kept:
                    log.append_all_and_commit(appends, consumer, offsets)
                appended.append((clock() - started) / events)
                started = clock()
                for each in headers:
                    encode_headers(each)
                packed.append((clock() - started) / events)
        finally:
            gc.enable()
    print(f"append_all_and_commit replayed, {events:,} births ({len(headers):,} records) "
          f"x {args.replays}: {summary(appended)}")
    print(f"  of which the headers (encode_headers): {summary(packed)}")


if __name__ == "__main__":
    main()
