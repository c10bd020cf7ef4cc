"""CPU and log lines of idle `handoff serve` processes on Kafka.

Starts a Tansu broker on loopback (or uses `--bootstrap-servers`), the deployment named
by `--split` (default: three processes, api, delivery and router), waits until every
process is ready and the router owns its partitions, publishes a few events so every
path has run once, opens `--streams` server-sent-event streams on the delivery process,
then measures each process's CPU (utime + stime from /proc/<pid>/stat) over `--seconds`
of idleness, and counts the WARNING lines each process logged meanwhile.

    python bench/kafka_idle.py                           # 30 s, three processes
    python bench/kafka_idle.py --seconds 10 --split "api,delivery router"
    python bench/kafka_idle.py --profile /tmp/idle       # py-spy of each process, idle

Prints one line per process: percent of one core, and warnings logged while idle.
The machine may be shared: a calibration loop's time is printed before and after
(bench/calibration.py); a process's own CPU time does not grow with others' load, but
more of it goes to contention when the machine is busy.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.calibration import calibration_ms  # noqa: E402
from bench.e2e_load import OWNERS, SUBSCRIPTIONS, bench_policy, warm_up  # noqa: E402
from tests.e2e.harness import BrokerProcess, LogBackend, demo_keys  # noqa: E402
from tests.kafka_broker import TansuBroker  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def hold_streams(url: str, keys: dict[str, str], count: int, stop: threading.Event
                 ) -> list[threading.Thread]:
    """`count` idle SSE streams, spread over the bench subscriptions."""
    def follow(sub: str) -> None:
        headers = {"Authorization": f"Bearer {keys[OWNERS[sub]]}"}
        with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=None) as client, \
                client.stream("GET", f"{url}/v1/subscriptions/{sub}/stream",
                              headers=headers) as response:
            for _line in response.iter_lines():
                if stop.is_set():
                    return

    threads = [threading.Thread(target=follow, args=(SUBSCRIPTIONS[n % len(SUBSCRIPTIONS)],),
                                daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    return threads


def warnings_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if "WARNING" in line or "Warning" in line]


def main(args: argparse.Namespace) -> None:
    keys = demo_keys()
    with tempfile.TemporaryDirectory(prefix="handoff-idle-") as tmp, \
            contextlib.ExitStack() as stack:
        root = Path(tmp)
        servers = args.bootstrap_servers or stack.enter_context(TansuBroker()).bootstrap_servers
        template = BrokerProcess(data_dir=root / "data", policy_dir=bench_policy(root),
                                 backend=LogBackend.kafka(servers),
                                 env={"HANDOFF_AUDIT__CHECKPOINT_INTERVAL_SECONDS": "60"})
        processes = [template.sibling(roles) for roles in args.split.split()]
        for process in processes:
            process.launch()
        stop = threading.Event()
        try:
            for process in processes:
                process.wait_ready(120)
            url = next(p.url for p in processes if "api" in p.role.split(","))
            subscribe_url = next(p.url for p in processes if "delivery" in p.role.split(","))
            warm_up(url, keys, subscribe_url)
            hold_streams(subscribe_url, keys, args.streams, stop)
            time.sleep(args.settle)
            logged = {p.port: len(p.logs()) for p in processes}
            profilers = []
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                for p in processes:
                    assert p.proc is not None
                    profilers.append(subprocess.Popen(
                        ["py-spy", "record", "--nonblocking", "--pid", str(p.proc.pid),
                         "--duration", str(int(args.seconds)), "--rate", "100", "--format",
                         "raw", "--output",
                         str(args.profile / f"idle-{p.role.replace(',', '-')}.txt")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            pids = {p.port: p.proc.pid for p in processes if p.proc is not None}
            calibrated = calibration_ms()
            before = {port: cpu_seconds(pid) for port, pid in pids.items()}
            wall = time.monotonic()
            time.sleep(args.seconds)
            elapsed = time.monotonic() - wall
            after = {port: cpu_seconds(pid) for port, pid in pids.items()}
            for profiler in profilers:
                profiler.wait(60)
            print(f"idle on Kafka for {elapsed:.0f} s, {args.streams} SSE streams open "
                  f"(calibration loop {calibrated:.0f} ms before, {calibration_ms():.0f} ms "
                  "after)")
            for p in processes:
                used = 100 * (after[p.port] - before[p.port]) / elapsed
                new_lines = warnings_in(p.logs()[logged[p.port]:])
                print(f"  {p.role:16s} {used:5.1f}% of a core   warnings logged: "
                      f"{len(new_lines)}")
                for line in new_lines[: args.show_warnings]:
                    print(f"      {line[:200]}")
            since_start = [line for p in processes for line in warnings_in(p.logs())]
            print(f"  warnings logged since start, all processes: {len(since_start)}")
            for line in since_start[: args.show_warnings]:
                print(f"      {line[:200]}")
        finally:
            stop.set()
            for process in reversed(processes):
                process.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--settle", type=float, default=5,
                        help="seconds to let the warm-up traffic drain before measuring")
    parser.add_argument("--split", default="api delivery router",
                        help="each word is one process's roles")
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--bootstrap-servers", default=None)
    parser.add_argument("--profile", type=Path, default=None,
                        help="write py-spy raw profiles of each idle process here")
    parser.add_argument("--show-warnings", type=int, default=3)
    main(parser.parse_args())
