"""CPU per event of the router's whole step, on the embedded broker.

    python bench/router_step_cpu.py                     # 10,000 births, linkage off
    python bench/router_step_cpu.py 2000
    python bench/router_step_cpu.py 10000 --linked      # linkage on, births of one mother
    python bench/router_step_cpu.py 5000 --linked --subjects 20000   # mostly new mothers
    python bench/router_step_cpu.py 3000 --linked --step 3  # steps of 3, as at 300/s
    python bench/router_step_cpu.py 10000 --linked --stages  # and CPU per stage
    python bench/router_step_cpu.py 30000 --linked --settled  # the collector's share

Builds an embedded broker in this process (bench/inprocess.py: real SQLite log, audit
store and, with `--linked`, person index), publishes births in batches of 500, then
times `Router.step` until every birth is routed: this process's CPU time per event (what
the router costs, whatever else runs on a shared machine) and wall time, then the same
per step (a full batch of 500): the median and the best step. On a shared machine the
best step is the steadiest figure to compare two versions by. Without
`--linked` the bundle is the demo's minus linkage.yaml and every birth is of a new
mother; with it, the demo bundle plus the benchmark subscription of bench/e2e_latency.py
and the births that benchmark sends (`--subjects` mothers; one by default, so linking
finds the known record each time), after one warm-up batch. `--step N` has the router
take at most N records a step (the real run's steps hold ~3 births at 300/s, ~30 at
1,000/s), which shows the fixed cost of a step. `--stages` then routes as many births
again and prints the CPU per event of each stage of the step (bench/router_stages.py).
`--settled` settles the heap before routing as the router process does once started
(`broker.cli.heap`: start-up objects frozen, young objects collected every
`router_young(--step)` allocations, or every `--young N`) and prints the collector's CPU
per event; without it the heap is left as the benchmark built it. Asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.calibration import calibration_ms  # noqa: E402
from bench.e2e_load import bench_policy, new_birth  # noqa: E402
from bench.inprocess import BATCH, InProcess, embedded_broker  # noqa: E402
from bench.linkage_router import births, unlinked_demo_policy  # noqa: E402
from bench.router_stages import report, settled_collector, timed_stages  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", nargs="?", type=int, default=10_000,
                        help="births to route (default 10,000)")
    parser.add_argument("--linked", action="store_true",
                        help="the demo bundle with its linkage, births of --subjects mothers")
    parser.add_argument("--subjects", type=int, default=1,
                        help="with --linked, mothers the births are spread over (default 1)")
    parser.add_argument("--step", type=int, default=BATCH,
                        help=f"most records a router step takes (default {BATCH})")
    parser.add_argument("--stages", action="store_true",
                        help="then route as many births again, timing each stage")
    parser.add_argument("--settled", action="store_true",
                        help="settle the heap as the router process does; time the collector")
    parser.add_argument("--young", type=int, default=None,
                        help="with --settled, collect young objects every N allocations")
    args = parser.parse_args()
    events = args.events
    print(f"calibration loop: {calibration_ms():.0f} ms")
    with embedded_broker(bench_policy if args.linked else unlinked_demo_policy,
                         args.step) as bench:
        if args.linked:
            warm = [new_birth(n, args.subjects) for n in range(min(BATCH, args.subjects))]
            bench.publish(warm)
            bench.route(len(warm))
            bench.publish([new_birth(n, args.subjects) for n in range(events)])
        else:
            bench.publish(births([], events))
        collector = None
        if args.settled:
            with settled_collector(args.step, args.young) as collector:
                cpu, wall, steps = _route(bench, events, args.step)
        else:
            cpu, wall, steps = _route(bench, events, args.step)
        if args.stages:
            bench.publish([new_birth(n, args.subjects) for n in range(events)]
                          if args.linked else births([], events))
            with timed_stages() as spent:
                bench.route(events)
    what = (f"linkage on, {events:,} births of {args.subjects:,} mother(s)" if args.linked
            else f"{events:,} births")
    print(f"router.step, {what}, {cpu / events * 1e6:.0f} µs CPU per event, "
          f"{wall / events * 1e6:.0f} µs wall")
    if steps:
        print(f"per full step ({len(steps)} of {args.step} births): median "
              f"{statistics.median(steps) * 1e6:.0f} µs CPU per event, best "
              f"{min(steps) * 1e6:.0f} µs; median {statistics.median(steps) * args.step * 1e3:.2f}"
              " ms CPU per step")
    if collector is not None:
        print(f"collector (heap settled, young every {gc.get_threshold()[0]:,}): "
              f"{collector[0] / events * 1e6:.1f} µs CPU per event, "
              f"{collector[1]:.0f} young and {collector[2]:.0f} older collections")
    if args.stages:
        print(report(spent, events))


def _route(bench: InProcess, events: int, full: int) -> tuple[float, float, list[float]]:
    """Step the router until `events` are routed: (CPU, wall) seconds in all, and the CPU
    seconds per event of each step that routed a full batch."""
    router = bench.broker.router
    assert router is not None
    steps: list[float] = []
    routed, cpu, wall = 0, time.process_time(), time.perf_counter()
    while routed < events:
        started = time.process_time()
        done = router.step()
        if done == full:
            steps.append((time.process_time() - started) / done)
        routed += done
    return time.process_time() - cpu, time.perf_counter() - wall, steps


if __name__ == "__main__":
    main()
