"""CPU of the embedded idempotency index as it fills: per row written and per lookup,
with the index already holding 0, 100,000 and 500,000 rows.

    python bench/idempotency_index.py                        # 0, 100,000, 500,000 rows
    python bench/idempotency_index.py --sizes 0 1000000 --batch 500 --rounds 20

Every benchmark of the broker starts with an empty index, so its figures understate what
a broker that has run for days spends here. For each size this fills a fresh
`SqliteIdempotencyIndex` (the class `handoff serve` uses, in a temporary directory) with
that many accepted births keyed by random event ids, as publishers send them, then
times, in this process's CPU (`time.process_time`), `--rounds` writes of `--batch` new
rows (`remember_all` then `flush`, what group commit does every 0.1 s; 500 rows is 0.1 s
at 5,000 births a second) and as many lookups of `--batch` ids, half of them in the
index (re-sent events) and half new (the usual case). Prints µs per row written and per
id looked up, best and median round. Asserts nothing; a shared machine is noisy, so
compare runs made back to back.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.calibration import calibration_ms  # noqa: E402
from broker.ingest.idempotency import Accepted, AcceptedRow, SqliteIdempotencyIndex  # noqa: E402

SOURCE = "county-general"
TOPIC = "events.birth"
FILL_BATCH = 20_000


class Rows:
    """New accepted rows, at offsets that go on from the last."""

    def __init__(self) -> None:
        self.offset = 0
        self.ids: list[str] = []

    def next(self, count: int) -> list[AcceptedRow]:
        out = []
        for _ in range(count):
            event_id = str(uuid.uuid4())
            self.ids.append(event_id)
            out.append((SOURCE, event_id, Accepted(TOPIC, 0, self.offset)))
            self.offset += 1
        return out


def measure(size: int, batch: int, rounds: int) -> tuple[list[float], list[float]]:
    """µs of CPU per row written and per id looked up, one figure per round."""
    with tempfile.TemporaryDirectory(prefix="handoff-idem-") as tmp:
        index = SqliteIdempotencyIndex(Path(tmp) / "idempotency.db")
        rows = Rows()
        try:
            for start in range(0, size, FILL_BATCH):
                index.remember_all(rows.next(min(FILL_BATCH, size - start)))
                index.flush()
            rng = random.Random(size)
            writes, lookups = [], []
            for _ in range(rounds):
                new = rows.next(batch)
                began = time.process_time()
                index.remember_all(new)
                index.flush()
                writes.append((time.process_time() - began) / batch * 1e6)
                known = rng.sample(rows.ids, batch // 2)
                ids = known + [str(uuid.uuid4()) for _ in range(batch - len(known))]
                began = time.process_time()
                found = index.lookup(SOURCE, ids)
                lookups.append((time.process_time() - began) / batch * 1e6)
                if len(found) != len(known):
                    raise SystemExit(f"looked up {len(known)} known ids, found {len(found)}")
            return writes, lookups
        finally:
            index.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 100_000, 500_000],
                        help="rows the index holds before each measurement")
    parser.add_argument("--batch", type=int, default=500,
                        help="rows per write, ids per lookup (default 500)")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(f"calibration loop: {calibration_ms():.0f} ms")
    print(f"idempotency index, {args.batch} rows a write and ids a lookup, {args.rounds} "
          "rounds; µs of CPU (best / median):")
    print(f"  {'rows held':>10s}  {'per row written':>18s}  {'per id looked up':>18s}")
    for size in args.sizes:
        writes, lookups = measure(size, args.batch, args.rounds)
        print(f"  {size:>10,d}  {min(writes):8.1f} / {statistics.median(writes):6.1f}  "
              f"{min(lookups):8.1f} / {statistics.median(lookups):6.1f}")


if __name__ == "__main__":
    main()
