"""CPU cost of waiting for records appended by another process, on the embedded log.

A process of a split deployment (router, or delivery with streams open) always has
threads in `wait`; one watcher thread sleeps on the log's doorbell and reads `PRAGMA
data_version` every `log.doorbell_poll_ms` (500 ms) while any do, or, with the doorbell
off, every `log.cross_process_poll_ms`. This prints the process's CPU use with N idle
waiters, with the doorbell and with polling only, so a poll interval's cost can be
weighed against the hand-off latency it buys (`bench/doorbell_latency.py`).

    python bench/idle_waiters.py                   # doorbell; 2, 5 and 50 ms; 1 and 10 waiters
    python bench/idle_waiters.py --intervals-ms 2 --waiters 1 100 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from broker.log.port import TopicSpec  # noqa: E402
from broker.log.sqlite import SqliteEventLog  # noqa: E402


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def measure(interval_ms: float | None, waiters: int, seconds: float) -> float:
    """Percent of one core used while `waiters` threads wait and nothing is appended
    (`interval_ms` None: with the doorbell)."""
    with tempfile.TemporaryDirectory(prefix="handoff-idle-") as tmp:
        log = SqliteEventLog(Path(tmp) / "log.db", doorbell=interval_ms is None,
                             cross_process_poll_s=(interval_ms or 1) / 1000)
        log.ensure_topic(TopicSpec("deliver.bench"))
        stop = threading.Event()

        def wait() -> None:
            while not stop.is_set():
                log.wait({("deliver.bench", 0): 0}, 0.5)

        threads = [threading.Thread(target=wait, daemon=True) for _ in range(waiters)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        cpu, wall = cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        used = (cpu_seconds() - cpu) / (time.monotonic() - wall)
        stop.set()
        for thread in threads:
            thread.join()
        log.close()
    return 100 * used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intervals-ms", type=float, nargs="+", default=[2, 5, 50])
    parser.add_argument("--waiters", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    print("idle waiters on the embedded log (CPU of this process; noisy on a shared machine)")
    for interval in [None, *args.intervals_ms]:
        for waiters in args.waiters:
            how = "doorbell      " if interval is None else f"poll every {interval:5g} ms"
            print(f"  {how}, {waiters:4d} waiters: "
                  f"{measure(interval, waiters, args.seconds):5.2f}% of one core")


if __name__ == "__main__":
    main()
