"""CPU per event of the router's whole step with record linkage on, as `handoff serve`
runs it in the end-to-end benchmark.

    python bench/router_linked_cpu.py                  # 10,000 births of the demo mother
    python bench/router_linked_cpu.py 5000 --subjects 100

Builds an embedded broker (`build_broker`, real SQLite log, audit store and person index)
with the end-to-end benchmark's bundle (the demo bundle, linkage.yaml included, plus a
third birth subscription), publishes births (`bench/e2e_load.py`'s: by default all of the
demo story's mother, as `bench/e2e_latency.py` sends them; `--subjects N` spreads them
over N mothers) in batches of 500, routes the first batch untimed (the mothers and
children become persons), then times `Router.step` until every birth is routed: this
process's CPU time per event and wall time. Asserts nothing; the machine is shared, so
the figures are noisy: run A/B back to back and repeat.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.calibration import calibration_ms  # noqa: E402
from bench.e2e_load import bench_policy, new_birth  # noqa: E402
from broker.auth import Principal, Role  # noqa: E402
from broker.bootstrap import build_broker  # noqa: E402
from broker.config import load_settings  # noqa: E402

BATCH = 500


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", nargs="?", type=int, default=10_000,
                        help="births to time (default 10,000)")
    parser.add_argument("--subjects", type=int, default=1,
                        help="mothers the births are spread over (default 1)")
    args = parser.parse_args()
    events = args.events
    print(f"calibration loop: {calibration_ms():.0f} ms")
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        settings = load_settings(policy_dir=bench_policy(workdir),
                                 data_dir=workdir / "data", log={"sync": "normal"})
        broker = build_broker(settings, router_thread=False)
        assert broker.publisher is not None and broker.router is not None
        hospital = Principal("bench", "county-general", frozenset({Role.PUBLISH}))
        try:
            warm = [new_birth(n, args.subjects) for n in range(min(BATCH, args.subjects))]
            broker.publisher.publish_json(hospital, "birth", warm)
            routed = 0
            while routed < len(warm):
                routed += broker.router.step()
            published = [new_birth(n, args.subjects) for n in range(events)]
            for start in range(0, events, BATCH):
                broker.publisher.publish_json(hospital, "birth", published[start:start + BATCH])
            routed, cpu, wall = 0, time.process_time(), time.perf_counter()
            while routed < events:
                routed += broker.router.step()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            broker.stop()
    print(f"router.step, linkage on: {events:,} births of {args.subjects:,} mother(s), "
          f"{cpu / events * 1e6:.0f} µs CPU per event, {wall / events * 1e6:.0f} µs wall")


if __name__ == "__main__":
    main()
