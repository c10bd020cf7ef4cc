"""Append and read rates of the embedded event log.

Appends N records in batches of 1, 10, 100 and 1,000, printing records per second for
each batch size and the p50/p99 latency of single-record appends, then reads everything
back and prints the read rate, and the hand-off time from an append to a thread that
was blocked in `wait`.

    python bench/log_append.py [--records N] [--value-bytes B] [--partitions P] [--sync full]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from broker.log import NewRecord, SqliteEventLog, TopicSpec

BATCH_SIZES = (1, 10, 100, 1000)
HANDOFFS = 200


def measure_handoff(log: SqliteEventLog) -> list[float]:
    """Seconds from the start of an append to the moment a waiting thread wakes."""
    log.ensure_topic(TopicSpec("bench.handoff"))
    woke_at: list[float] = []
    ready = threading.Event()

    def waiter() -> None:
        for offset in range(HANDOFFS):
            ready.set()
            log.wait({("bench.handoff", 0): offset}, timeout=5)
            woke_at.append(time.perf_counter())

    thread = threading.Thread(target=waiter)
    thread.start()
    appended_at: list[float] = []
    for _ in range(HANDOFFS):
        ready.wait()
        ready.clear()
        time.sleep(0.002)  # let the waiter block before the append
        appended_at.append(time.perf_counter())
        log.append("bench.handoff", [NewRecord(b"x")])
    thread.join()
    return [woke - appended for woke, appended in zip(woke_at, appended_at, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="records per batch size")
    parser.add_argument("--value-bytes", type=int, default=300)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--sync", choices=("normal", "full"), default="normal")
    args = parser.parse_args()

    value = bytes(range(256)) * (args.value_bytes // 256) + b"x" * (args.value_bytes % 256)
    headers = (("event_id", b"0f8e4c1a-6a8f-4f35-9d3e-6a6f3e1b2c4d"),)
    print(
        f"embedded log, sync={args.sync}, {args.records} records per batch size, "
        f"{args.value_bytes}-byte values, {args.partitions} partitions"
    )
    with tempfile.TemporaryDirectory() as directory:
        log = SqliteEventLog(Path(directory) / "log.db", sync=args.sync)
        try:
            total = 0
            for batch_size in BATCH_SIZES:
                topic = f"bench.batch{batch_size}"
                log.ensure_topic(TopicSpec(topic, args.partitions))
                latencies: list[float] = []
                started = time.perf_counter()
                for first in range(0, args.records, batch_size):
                    batch = [
                        NewRecord(value, key=f"subject-{n}".encode(), headers=headers)
                        for n in range(first, min(first + batch_size, args.records))
                    ]
                    before = time.perf_counter()
                    log.append(topic, batch)
                    latencies.append(time.perf_counter() - before)
                elapsed = time.perf_counter() - started
                total += args.records
                line = f"batch {batch_size:>5}: {args.records / elapsed:>10,.0f} records/s"
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
                    while records := log.read(topic, partition, offset, 500):
                        read += len(records)
                        offset = records[-1].offset + 1
            elapsed = time.perf_counter() - started
            assert read == total, f"read {read} of {total} records"
            print(f"read (500 per call): {read / elapsed:>10,.0f} records/s")

            cuts = statistics.quantiles(measure_handoff(log), n=100)
            print(
                f"append to woken waiter (incl. the append): "
                f"p50 {cuts[49] * 1e6:,.0f} µs, p99 {cuts[98] * 1e6:,.0f} µs"
            )
        finally:
            log.close()


if __name__ == "__main__":
    main()
