"""CPU per event of the router's whole step, on the embedded broker, without linkage.

    python bench/router_step_cpu.py              # 10,000 births
    python bench/router_step_cpu.py 2000

Builds an embedded broker (`build_broker`, real SQLite log and audit store) with the demo
bundle minus linkage.yaml, publishes births of new mothers in batches of 500, then times
`Router.step` until every birth is routed: this process's CPU time per event (what the
router costs, whatever else runs on a shared machine) and wall time. Asserts nothing.
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
from bench.linkage_router import births, unlinked_demo_policy  # noqa: E402
from broker.auth import Principal, Role  # noqa: E402
from broker.bootstrap import build_broker  # noqa: E402
from broker.config import load_settings  # noqa: E402

BATCH = 500


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", nargs="?", type=int, default=10_000,
                        help="births to route (default 10,000)")
    events = parser.parse_args().events
    print(f"calibration loop: {calibration_ms():.0f} ms")
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        settings = load_settings(policy_dir=unlinked_demo_policy(workdir),
                                 data_dir=workdir / "data", log={"sync": "normal"})
        broker = build_broker(settings, router_thread=False)
        assert broker.publisher is not None and broker.router is not None
        hospital = Principal("bench", "county-general", frozenset({Role.PUBLISH}))
        try:
            published = births([], events)
            for start in range(0, events, BATCH):
                broker.publisher.publish_json(hospital, "birth", published[start:start + BATCH])
            routed, cpu, wall = 0, time.process_time(), time.perf_counter()
            while routed < events:
                routed += broker.router.step()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            broker.stop()
    print(f"router.step: {events:,} births, {cpu / events * 1e6:.0f} µs CPU per event, "
          f"{wall / events * 1e6:.0f} µs wall")


if __name__ == "__main__":
    main()
