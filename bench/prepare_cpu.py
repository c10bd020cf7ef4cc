"""CPU per event of the publisher's validation and encoding, apart from everything else.

`Publisher.prepare_json` (authorisation, JSON to record, checks, Avro encoding, size
checks) over batches of births as the batch route hands them over, in this process,
without HTTP or group commit: steadier than a whole publish, so per-event changes show.

    python bench/prepare_cpu.py                     # batches of 100, 40 batches a round
    python bench/prepare_cpu.py --batch 1 --batches 2000 --rounds 3

Prints each round's process CPU per event (`time.process_time`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_load import bench_policy, new_birth  # noqa: E402
from bench.inprocess import HOSPITAL, embedded_broker  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=100, help="births per request")
    parser.add_argument("--batches", type=int, default=40, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with embedded_broker(bench_policy) as bench:
        publisher = bench.broker.publisher
        assert publisher is not None
        batched = args.batch > 1
        requests = [[new_birth() for _ in range(args.batch)] for _ in range(args.batches)]
        publisher.prepare_json(HOSPITAL, "birth", requests[0], batched)   # warm-up
        events = args.batch * args.batches
        figures = []
        for _ in range(args.rounds):
            started = time.process_time()
            for items in requests:
                publisher.prepare_json(HOSPITAL, "birth", items, batched)
            figures.append((time.process_time() - started) / events * 1e6)
        print(f"prepare_json, {args.batches:,} requests of {args.batch} births: "
              + " ".join(f"{f:.1f}" for f in figures) + " µs CPU per event")

if __name__ == "__main__":
    main()
