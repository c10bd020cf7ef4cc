"""What the router stores for a fixed input, as one hash per table: run it on two versions
and compare the lines, to show a change to the router's path writes the same bytes.

    python bench/router_identity.py router-input            # steps of 500
    python bench/router_identity.py router-input --step 7

The first run makes the directory named (`router-input` above): the policy of
`bench/router_step_cpu.py --linked`, a data directory with its keys, and 120 births of
20 mothers with fixed event ids. Every run then copies it aside, builds an embedded
broker on the copy (bench/inprocess.py's settings, router steps of at most `--step`
records) with the wall clock, the broker's clock, the record linkage resolver's clock
and the random bytes of person and review ids pinned, publishes 60 births and routes
them, then the other 60, and prints, for every table of every SQLite file of the data
directory (log, audit store, person index, ...), its row count and a SHA-256 of its
rows (sorted). Two versions that store the same print the same lines: run each with its
own PYTHONPATH against the same directory. Asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.e2e_load import bench_policy, new_birth  # noqa: E402
from bench.inprocess import HOSPITAL  # noqa: E402
from broker.bootstrap import build_broker  # noqa: E402
from broker.config import Settings, load_settings  # noqa: E402
from linkage import resolver  # noqa: E402

FIXED_MS = 1_790_000_000_000
BIRTHS, MOTHERS = 120, 20


def settings(root: Path, step: int) -> Settings:
    return load_settings(policy_dir=root / "policy", data_dir=root / "data",
                         log={"sync": "normal"},
                         router={"batch_size": step, "linger_ms": 0})


def make_input(root: Path) -> None:
    """The policy, a data directory with its keys, and the births, made once."""
    root.mkdir(parents=True)
    bench_policy(root)
    births = []
    for n in range(BIRTHS):
        birth = new_birth(n, MOTHERS)
        birth["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"handoff-birth-{n}"))
        births.append(birth)
    (root / "births.json").write_text(json.dumps(births))
    build_broker(settings(root, 500), router_thread=False).stop()


def pin_clocks_and_ids() -> None:
    """Time stands still at `FIXED_MS`; person and review ids come from a seeded stream."""
    seeded = random.Random(7)
    secrets.token_bytes = lambda n=32: bytes(seeded.getrandbits(8) for _ in range(n or 32))
    time.time = lambda: FIXED_MS / 1000
    time.time_ns = lambda: FIXED_MS * 1_000_000
    frozen = dt.datetime.fromtimestamp(FIXED_MS / 1000, dt.UTC)
    defaults = resolver.PersonResolver.__init__.__defaults__ or ()
    resolver.PersonResolver.__init__.__defaults__ = tuple(
        (lambda: frozen) if value is resolver._utc_now else value for value in defaults)


def route(root: Path, step: int) -> None:
    births = json.loads((root / "births.json").read_text())
    broker = build_broker(settings(root, step), router_thread=False, clock=lambda: FIXED_MS)
    assert broker.publisher is not None and broker.router is not None
    try:
        for half in (births[:BIRTHS // 2], births[BIRTHS // 2:]):
            broker.publisher.publish_json(HOSPITAL, "birth", half)
            while broker.router.step():
                pass
    finally:
        broker.stop()


def table_hashes(data: Path) -> list[str]:
    lines = []
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            tables = [row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        except sqlite3.DatabaseError:
            continue   # not a database (keys, lock files)
        for table in tables:
            rows = sorted(repr(row) for row in db.execute(f'SELECT * FROM "{table}"'))
            digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]
            lines.append(f"{path.relative_to(data)} {table}: {len(rows)} rows {digest}")
        db.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, help="the fixed input (made on the first run)")
    parser.add_argument("--step", type=int, default=500,
                        help="most records a router step takes (default 500)")
    args = parser.parse_args()
    if not args.dir.exists():
        make_input(args.dir)
    pin_clocks_and_ids()
    with tempfile.TemporaryDirectory() as name:
        copy = Path(name) / "run"
        shutil.copytree(args.dir, copy)
        route(copy, args.step)
        print("\n".join(table_hashes(copy / "data")))


if __name__ == "__main__":
    main()
