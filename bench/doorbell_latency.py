"""Hand-off latency between two processes on one embedded log: doorbell against polling.

One process appends a record every `--gap-ms` (its value the send time); another waits
on the topic (`SqliteEventLog.wait`, as the router and the delivery feed do) and reads
it. Prints the wake-up latency (append committed -> record read by the other process)
and the waiting process's CPU, with the doorbell (the default) and with polling only
every `--poll-ms` (`log.doorbell: false`, `log.cross_process_poll_ms`).

    python bench/doorbell_latency.py                       # 500 records, 5 ms apart
    python bench/doorbell_latency.py --records 2000 --gap-ms 1 --poll-ms 2 50
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from broker.log.port import NewRecord, TopicSpec  # noqa: E402
from broker.log.sqlite import SqliteEventLog  # noqa: E402

TOPIC = "deliver.bench"


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def writer(path: str, records: int, gap_s: float, doorbell: bool, start: float) -> None:
    log = SqliteEventLog(Path(path), doorbell=doorbell)
    while time.time() < start:
        time.sleep(0.001)
    for _ in range(records):
        log.append(TOPIC, [NewRecord(key=None, value=str(time.perf_counter_ns()).encode())])
        time.sleep(gap_s)
    log.close()


def measure(records: int, gap_s: float, doorbell: bool, poll_s: float) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory(prefix="handoff-bell-") as tmp:
        path = Path(tmp) / "log.db"
        log = SqliteEventLog(path, doorbell=doorbell, cross_process_poll_s=poll_s)
        log.ensure_topic(TopicSpec(TOPIC))
        log.wait({(TOPIC, 0): 0}, 0.01)  # listening before the writer starts
        start = time.time() + 1.0
        proc = multiprocessing.get_context("spawn").Process(
            target=writer, args=(str(path), records, gap_s, doorbell, start))
        proc.start()
        latencies: list[float] = []
        offset = 0
        cpu = None
        while offset < records:
            if not log.wait({(TOPIC, 0): offset}, 5.0):
                break
            now = time.perf_counter_ns()
            if cpu is None:
                cpu, wall = cpu_seconds(), time.monotonic()
            for record in log.read(TOPIC, 0, offset):
                latencies.append((now - int(record.value)) / 1e6)
                offset = record.offset + 1
        used = (cpu_seconds() - cpu) / (time.monotonic() - wall) if cpu is not None else 0.0
        proc.join()
        log.close()
    return latencies, 100 * used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--gap-ms", type=float, default=5.0)
    parser.add_argument("--poll-ms", type=float, nargs="+", default=[2.0])
    args = parser.parse_args()
    print(f"cross-process hand-off, {args.records} records {args.gap_ms:g} ms apart "
          "(noisy on a shared machine)")
    runs = [("doorbell", True, 0.5)] + [(f"poll {p:g} ms", False, p / 1000)
                                        for p in args.poll_ms]
    for label, doorbell, poll_s in runs:
        latencies, cpu = measure(args.records, args.gap_ms / 1000, doorbell, poll_s)
        latencies.sort()
        if not latencies:
            print(f"  {label:12s}: nothing read")
            continue
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"  {label:12s}: p50 {statistics.median(latencies):6.2f} ms  p99 {p99:6.2f} ms"
              f"  max {latencies[-1]:6.2f} ms  reader CPU {cpu:5.1f}% of one core"
              f"  ({len(latencies)} read)")


if __name__ == "__main__":
    main()
