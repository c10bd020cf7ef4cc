"""Publish-to-delivery latency, sustained throughput and CPU per event of a real
`handoff serve`, beside floors measured in the same run.

    python bench/e2e_latency.py            # the whole run (3 to 6 minutes), summary at the end
    python bench/e2e_latency.py --quick    # the same phases, a few seconds each
    python bench/e2e_latency.py --backend embedded --no-sweep --rate 1000 --seconds 30
    python bench/e2e_latency.py --backend embedded --split --no-sweep   # api+delivery, router
    python bench/e2e_latency.py --backend embedded --single-process --no-sweep  # all in one
    python bench/e2e_latency.py --backend kafka --split "api delivery router" --no-sweep \
        --rate 1000 --kafka-floor          # Kafka part only, with the bare kafka-python floor
    python bench/e2e_latency.py --backend embedded --profile /tmp/prof  # py-spy flame graphs

The default run, in order (each phase's length has a flag):
  1. a calibration loop (bench/calibration.py; again before Kafka and at the end): on a
     shared machine the figures beside a slower loop are pessimistic by about that ratio;
  2. floor (a), a minimal ASGI app's publish ceiling (bench/asgi_floor.py,
     `--floor-seconds`), and floor (b), a hand-written fastavro + sqlite3 router loop
     (bench/router_floor.py, `--router-floor-events`);
  3. embedded log, one `handoff serve` (its router in a supervised process of its own, as
     by default; `--single-process` for one process, `--split` for roles apart): p99 at `--rate`
     (1,000) births/s, one per request, three SSE subscribers, for `--seconds`; then the
     sweep (`--sweep-rates`, `--sweep-seconds` each, batches of 100) up to the first rate
     not sustained, whose highest sustained rate is the ceiling (goal 5,000 births/s);
  4. Kafka on a Tansu broker started for the run (skipped, with a line saying why, when
     the Tansu binary is missing; `--bootstrap-servers` for a cluster of your own):
     floor (c), the bare kafka-python two-hop pipeline (bench/kafka_floor.py) at `--rate`,
     then Handoff as `--kafka-split` processes (api, delivery, router) at `--rate`;
  5. a summary table: figure, measured, floor, target, met or missed by how much.

Latency: each event's latency is the time it arrived at a subscriber minus the time the
schedule said to send it (not when the sender got round to it), so any stall, in the
broker or the client, shows in the percentiles. A sweep rate is sustained when every event
reaches all three subscribers within two seconds of the end of sending and the rate
delivered, over the sending and the catching up, is at least 95% of the rate offered.

Broker CPU: user + system CPU of every broker process and all its children (read from
/proc before and after each measured phase, bench/proc_cpu.py), divided by the events
of the phase. The floor per event is floor (a) per request + floor (b) per event
(+ floor (c) per record on Kafka); it leaves out the SSE write to three streams, so it is
a lower bound and the 2x goal a strict one. Each latency run also prints the CPU per
event of every process on its own (and of the Tansu broker the run started, which the
broker CPU above leaves out), to show which process a rate is bound by.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import asgi_floor, router_floor  # noqa: E402
from bench.calibration import calibration_ms  # noqa: E402
from bench.e2e_load import (  # noqa: E402
    LatencyResult,
    SweepStep,
    bench_policy,
    latency_run,
    new_birth,
    throughput_run,
    warm_up,
)
from bench.e2e_report import Figures, summary  # noqa: E402
from bench.kafka_floor import measured_run  # noqa: E402
from bench.proc_cpu import members_cpu_seconds, per_member, tree_cpu_seconds  # noqa: E402
from bench.summary import percentile  # noqa: E402
from tests.e2e.harness import BrokerProcess, LogBackend, demo_keys  # noqa: E402
from tests.kafka_broker import TansuBroker, tansu_binary  # noqa: E402

TARGET_P99_MS = {"embedded": 50, "kafka": 150}


def calibrate(figures: Figures, when: str) -> None:
    figures.calibration_ms.append((when, calibration_ms()))
    print(f"\ncalibration loop ({when}): {figures.calibration_ms[-1][1]:.0f} ms")


def start_processes(root: Path, split: str | None, backend: LogBackend,
                    single_process: bool = False) -> list[BrokerProcess]:
    """The deployment under test; the first process is the one clients talk to."""
    root.mkdir(parents=True, exist_ok=True)
    env = {"HANDOFF_AUDIT__CHECKPOINT_INTERVAL_SECONDS": "60"}
    if single_process:
        env["HANDOFF_ROUTER_PROCESS"] = "0"
    template = BrokerProcess(data_dir=root / "data", policy_dir=bench_policy(root),
                             backend=backend, env=env)
    processes = [template.sibling(roles) for roles in split.split()] if split else [template]
    for process in processes:
        process.launch()
    for process in processes:
        process.wait_ready(120)
    return processes


def start_profiles(processes: list[BrokerProcess], out: Path, seconds: float,
                   form: str = "flamegraph") -> list[subprocess.Popen[bytes]]:
    """py-spy profiles of every process, for the length of the latency run: flame graphs
    (SVG), or collapsed stacks (`raw`, text) to grep and sum."""
    out.mkdir(parents=True, exist_ok=True)
    profilers = []
    for process in processes:
        assert process.proc is not None
        suffix = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[form]
        target = out / f"{process.role.replace(',', '-')}-{process.port}.{suffix}"
        profilers.append(subprocess.Popen(
            # Non-blocking: a profiler that stops the process 200 times a second would
            # be the latency it measures. Idle threads too, so a thread's samples show
            # where its wall time goes (waiting on Kafka included); children too (the
            # router process of `handoff serve`).
            ["py-spy", "record", "--nonblocking", "--idle", "--subprocesses",
             "--pid", str(process.proc.pid), "--duration", str(int(seconds) + 1),
             "--rate", "200", "--format", form,
             "--output", str(target)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return profilers


@dataclass(frozen=True)
class Deployment:
    processes: tuple[BrokerProcess, ...]
    url: str
    subscribe_url: str
    shape: str

    def cpu(self) -> float:
        """CPU seconds so far of every broker process tree (children included)."""
        return tree_cpu_seconds(p.proc.pid for p in self.processes if p.proc is not None)


@contextlib.contextmanager
def deployment(root: Path, split: str | None, backend: LogBackend,
               single_process: bool = False) -> Iterator[Deployment]:
    processes = start_processes(root, split, backend, single_process)
    try:
        roles = [p.role for p in processes]
        yield Deployment(
            tuple(processes),
            next(p.url for p in processes if p.role == "all" or "api" in p.role.split(",")),
            next(p.url for p in processes
                 if p.role == "all" or "delivery" in p.role.split(",")),
            f"{len(processes)} processes ({' + '.join(roles)})" if split
            else "one process" if single_process
            else "one handoff serve (its router in a process of its own)")
    finally:
        for process in reversed(processes):
            process.stop()
        for process in processes:
            lines = process.logs().splitlines()
            warned = [line for line in lines if " WARNING " in line]
            blocking = sum("blocking the event loop" in line for line in warned)
            print(f"  {process.role}: {len(warned)} warnings logged, {blocking} of them "
                  "kafka-python's 'blocking the event loop'")
            # Errors are the broker's to explain: each distinct one, once.
            errors = dict.fromkeys(line.split(" ERROR ", 1)[1] for line in lines
                                   if " ERROR " in line)
            for message in list(errors)[:5]:
                print(f"    error logged: {message[:160]}")


def settle(where: Deployment, keys: dict[str, str], timeout: float = 30) -> None:
    """Wait until the broker has caught up with what an earlier phase left it (births
    published now to every ingress partition have been delivered), so no phase pays for
    the one before; at most `timeout` seconds."""
    started = time.monotonic()
    try:
        warm_up(where.url, keys, where.subscribe_url, timeout)
    except (RuntimeError, httpx.HTTPError):
        print(f"  (the broker had not caught up after {timeout:.0f} s: this phase starts "
              "with a backlog from the one before)")
        return
    waited = time.monotonic() - started
    if waited > 1:
        print(f"  (waited {waited:.0f} s for the broker to catch up before this phase)")


async def measure(args: argparse.Namespace, keys: dict[str, str], where: Deployment,
                  name: str, sweep: bool, others: dict[str, int] | None = None
                  ) -> tuple[LatencyResult | None, list[SweepStep], bool]:
    """Latency at --rate (and --per-request), then the sweep; the one-per-request result.
    `others` names more processes (the Kafka broker) whose CPU the latency run reports."""
    warm_up(where.url, keys, where.subscribe_url)
    target = TARGET_P99_MS[name]
    profilers = (start_profiles(list(where.processes), args.profile / name, args.seconds + 1,
                                args.profile_format) if args.profile else [])
    pids = {**{f"{p.role} ({p.port})": p.proc.pid for p in where.processes
               if p.proc is not None}, **(others or {})}

    async def run(per_request: int) -> LatencyResult:
        """One latency run, then each process's CPU per event over it."""
        before = {label: members_cpu_seconds(pid) for label, pid in pids.items()}
        result = await latency_run(where.url, keys, args.rate, args.seconds, where.cpu,
                                   per_request, target_ms=target,
                                   subscribe_url=where.subscribe_url, subjects=args.subjects)
        events = max(1, result.events)
        print("  CPU per event offered, by process: " + ", ".join(
            part for label, pid in pids.items()
            for part in per_member(label, pid, before[label], events)))
        return result

    single = None if args.batched_only else await run(1)
    for profiler in profilers:
        profiler.wait(60)
    if args.per_request > 1:
        settle(where, keys)
        await run(args.per_request)
    steps: list[SweepStep] = []
    complete = False
    if sweep:
        print(f"\nsustained rate to 3 subscribers (batches of 100 over HTTP, "
              f"{args.sweep_seconds:.0f} s per rate, stops at the first rate not sustained):")
        for rate in args.sweep_rates:
            settle(where, keys)
            steps.append(await throughput_run(where.url, keys, rate, args.sweep_seconds,
                                              where.cpu, subscribe_url=where.subscribe_url,
                                              subjects=args.subjects))
            if not steps[-1].sustained:
                break
        else:
            complete = True
        best = max((s.rate for s in steps if s.sustained), default=0.0)
        print(f"  highest sustained offered rate: {best:,.0f} events/s (goal: 5,000)")
    return single, steps, complete


def measure_floors(args: argparse.Namespace, figures: Figures) -> None:
    print("\nfloors, measured on this machine now:")
    figures.asgi = asgi_floor.run(new_birth(), args.floor_seconds)
    print(f"  {figures.asgi.line()}")
    figures.router = router_floor.run(args.router_floor_events)
    print(f"  {figures.router.line()}")


def kafka_floor(servers: str, args: argparse.Namespace, figures: Figures) -> None:
    """Floor (c): the bare pipeline's latency and its three processes' CPU per record."""
    floor = measured_run(servers, args.rate, args.kafka_seconds, args.floor_fetch_wait_ms)
    latencies = floor.latencies_ms
    expected = int(args.rate * args.kafka_seconds)
    if not latencies:
        print("\nfloor (c): bare kafka-python two-hop pipeline: nothing arrived")
        return
    figures.kafka_floor_p99 = percentile(latencies, .99)
    figures.kafka_floor_cpu_us = floor.cpu_us_per_record
    print(f"\nfloor (c): bare kafka-python two-hop pipeline, {args.rate:.0f} records/s for "
          f"{args.kafka_seconds:.0f} s, fetch wait {args.floor_fetch_wait_ms} ms, same "
          f"broker: p50 {percentile(latencies, .5):.1f} ms  p99 "
          f"{figures.kafka_floor_p99:.1f} ms  missing {expected - len(latencies)}; "
          f"{figures.kafka_floor_cpu_us:.0f} µs CPU per record (source + relay + sink)")


async def kafka_part(args: argparse.Namespace, keys: dict[str, str], root: Path,
                     figures: Figures) -> None:
    if not args.bootstrap_servers:
        try:
            tansu_binary()
        except RuntimeError as missing:
            figures.kafka_skipped = f"no Tansu binary ({missing})"
            print(f"\nKafka part SKIPPED: no Tansu binary to start a Kafka-protocol broker "
                  f"({missing}); --bootstrap-servers runs it on a Kafka of your own")
            return
    calibrate(figures, "before Kafka")
    with contextlib.ExitStack() as stack:
        others: dict[str, int] = {}
        if args.bootstrap_servers:
            servers = args.bootstrap_servers
        else:
            tansu = stack.enter_context(TansuBroker())
            servers = tansu.bootstrap_servers
            if tansu.pid is not None:
                others["Tansu"] = tansu.pid
        where = "Tansu on loopback" if not args.bootstrap_servers else servers
        print(f"\nKafka log ({where})")
        if not args.no_floors:
            kafka_floor(servers, args, figures)
        split = args.split if args.backend == "kafka" and args.split else args.kafka_split
        with deployment(root / "kafka", split, LogBackend.kafka(servers)) as kafka:
            figures.kafka_shape = kafka.shape
            print(f"Handoff on Kafka, {kafka.shape}")
            saved = args.seconds
            args.seconds = args.kafka_seconds
            try:
                figures.kafka, steps, complete = await measure(
                    args, keys, kafka, "kafka", sweep=args.sweep and args.backend == "kafka",
                    others=others)
            finally:
                args.seconds = saved
            if args.backend == "kafka":
                figures.sweep, figures.sweep_complete = steps, complete


async def deployments(args: argparse.Namespace, figures: Figures) -> None:
    keys = demo_keys()
    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        root = Path(tmp)
        if args.backend in ("embedded", "both"):
            with deployment(root / "embedded", args.split, LogBackend.embedded(),
                            args.single_process) as embedded:
                figures.embedded_shape = embedded.shape
                print(f"\nembedded log, {embedded.shape}")
                figures.embedded, figures.sweep, figures.sweep_complete = await measure(
                    args, keys, embedded, "embedded", sweep=args.sweep)
        if args.backend in ("kafka", "both"):
            await kafka_part(args, keys, root, figures)


def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    figures = Figures(rate=args.rate, backends=(
        ("embedded", "kafka") if args.backend == "both" else (args.backend,)))
    print(f"e2e benchmark, backend {args.backend}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} (shared machine: figures are noisy)")
    calibrate(figures, "start")
    if not args.no_floors:
        measure_floors(args, figures)
    asyncio.run(deployments(args, figures))
    calibrate(figures, "end")
    print(f"\nsummary ({time.monotonic() - started:.0f} s run):")
    for line in summary(figures):
        print(f"  {line}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="every phase a few seconds long (a check that the run works)")
    parser.add_argument("--backend", choices=["embedded", "kafka", "both"], default="both")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=None,
                        help="latency phase on the embedded log (default 20; quick 3)")
    parser.add_argument("--kafka-seconds", type=float, default=None,
                        help="Kafka floor and latency phases (default 20; quick 3)")
    parser.add_argument("--subjects", type=int, default=1,
                        help="mothers the births are spread over (default 1: the demo "
                             "story's, so every birth is on one ingress partition)")
    parser.add_argument("--per-request", type=int, default=1,
                        help="also measure latency with this many events per batch request")
    parser.add_argument("--batched-only", action="store_true",
                        help="measure latency with --per-request events per request only")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false")
    parser.add_argument("--sweep-rates", type=float, nargs="+",
                        default=[500, 1000, 2000, 3000, 4000, 5000, 6000, 8000])
    parser.add_argument("--sweep-seconds", type=float, default=None,
                        help="each sweep rate (default 10; quick 2)")
    parser.add_argument("--no-floors", action="store_true",
                        help="skip floors (a), (b) and (c)")
    parser.add_argument("--floor-seconds", type=float, default=None,
                        help="floor (a), the minimal ASGI app (default 10; quick 2)")
    parser.add_argument("--router-floor-events", type=int, default=None,
                        help="floor (b), the router loop (default 20,000; quick 3,000)")
    parser.add_argument("--bootstrap-servers", default=None,
                        help="Kafka to run on (default: a Tansu broker started for the run)")
    parser.add_argument("--kafka-floor", action="store_true",
                        help="kept for old command lines: floor (c) is measured whenever "
                             "the Kafka part runs (unless --no-floors)")
    parser.add_argument("--floor-fetch-wait-ms", type=int, default=10)
    parser.add_argument("--split", nargs="?", const="api,delivery router", default=None,
                        help="run several processes: each word is one process's roles "
                             "(default 'api,delivery router'); with --backend kafka it "
                             "replaces --kafka-split")
    parser.add_argument("--single-process", action="store_true",
                        help="the embedded handoff serve with everything in one process "
                             "(handoff serve --single-process), not its default of the "
                             "router in a process of its own")
    parser.add_argument("--kafka-split", default="api delivery router",
                        help="the Kafka deployment's processes (default three)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write py-spy profiles of the latency runs to this folder")
    parser.add_argument("--profile-format", choices=["flamegraph", "raw", "speedscope"],
                        default="flamegraph")
    args = parser.parse_args(argv)
    lengths = {"seconds": (20, 3), "kafka_seconds": (20, 3), "sweep_seconds": (10, 2),
               "floor_seconds": (10, 2), "router_floor_events": (20_000, 3_000)}
    for name, (full, quick) in lengths.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.backend == "kafka" and args.seconds != args.kafka_seconds and \
            "--kafka-seconds" not in (argv or sys.argv):
        args.kafka_seconds = args.seconds   # --backend kafka --seconds N: as before
    return args


if __name__ == "__main__":
    main(parse_args())
