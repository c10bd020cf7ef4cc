"""Cost of the referral ledger's service-level timers with many open referrals.

Loads N open referrals (default 100,000) under the demo bundle's terms (three service
levels each, so 3N timers) into a ledger store, then measures:

- **idle tick**: CPU per tick when nothing is due (the common case: a tick every second);
- **busy tick**: CPU per tick that finds 100 due alerts, and per alert;
- **fire and record**: CPU to publish-and-record a batch of 100 alerts (the record is a
  store write that removes their timers);
- **scan per tick**: what a tick would cost if it scanned every open referral instead of
  reading the due-time index (the design this avoids), measured once;
- **memory**: the process's peak resident set after loading, and on SQLite the file size
  and the size of the timer index;
- **report**: time to build the funnel report over all N referrals.

Each store runs in its own process so the memory figures do not mix. Figures depend on
the machine and on what else runs on it; on a shared 2-core machine they are noisy.

    python bench/referral_timers.py                       # sqlite and memory, 100,000
    python bench/referral_timers.py --stores sqlite --referrals 300000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from broker.referral_store import SqliteLedgerStore  # noqa: E402
from policy.loader import load_bundle  # noqa: E402
from referrals.events import ReferralKey, ReferralMade  # noqa: E402
from referrals.ledger import ReferralLedger  # noqa: E402
from referrals.report import funnel  # noqa: E402
from referrals.store import InMemoryLedgerStore, LedgerStore, Position  # noqa: E402
from referrals.terms import ReferralPolicy  # noqa: E402
from schemas.catalog import SchemaCatalog  # noqa: E402

T0 = 1794218700000  # Monday 9 November 2026, 10:05 UTC
SPREAD_MS = 30 * 86_400_000
"""Referrals arrive over 30 days, so their deadlines spread over about two months."""
BATCH = 1000


def referrals(count: int) -> list[ReferralMade]:
    step = SPREAD_MS // count
    return [ReferralMade(f"bench-{n}", ReferralKey("cw-hotline", f"HL-{n:07d}"),
                         f"MPI-{n:07d}", "hv-nfp", "nfp-dane", "HOME_VISITING", "ROUTINE",
                         T0 + n * step, T0 + n * step) for n in range(count)]


def open_store(kind: str, folder: Path) -> LedgerStore:
    if kind == "sqlite":
        return SqliteLedgerStore(folder / "referrals.db")
    return InMemoryLedgerStore()


def per_call_us(action, repeat: int) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    for _ in range(repeat):
        action()
    return (time.process_time() - start) / repeat * 1e6


def sqlite_sizes(path: Path) -> dict[str, float]:
    import sqlite3

    sizes = {"file_mib": sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
             / 2**20}
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
        sizes.update({f"{name}_mib": size / 2**20 for name, size in rows
                      if name.startswith("referral_timers")})
    except sqlite3.OperationalError:
        pass  # SQLite built without the dbstat table
    db.close()
    return sizes


def run(kind: str, count: int, ticks: int) -> dict[str, float]:
    catalog = SchemaCatalog.load()
    policy = ReferralPolicy.from_bundle(load_bundle(REPO / "examples/demo/policy", catalog))
    results: dict[str, float] = {"referrals": count}
    with tempfile.TemporaryDirectory(prefix="handoff-referrals-") as tmp:
        store = open_store(kind, Path(tmp))
        ledger = ReferralLedger(store, policy)
        events = referrals(count)
        start = time.perf_counter()
        for n in range(0, count, BATCH):
            ledger.apply(events[n:n + BATCH], [Position("events.referral", 0, n + BATCH)])
        results["load_referrals_per_s"] = count / (time.perf_counter() - start)
        results["timers"] = store.timer_count()
        results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        first = store.next_due_at()
        assert first is not None
        idle_now = first - 1
        results["idle_tick_us"] = per_call_us(lambda: ledger.due_alerts(idle_now, 1000),
                                              ticks)
        # A moment when at least 100 timers are due; the tick stops at its limit.
        busy_now = store.due(1 << 62, 100)[-1].due_at
        busy = per_call_us(lambda: ledger.due_alerts(busy_now, 100), max(1, ticks // 10))
        results["busy_tick_us"] = busy
        results["busy_tick_us_per_alert"] = busy / 100
        cycles = 20
        start = time.process_time()
        for _ in range(cycles):
            alerts = ledger.due_alerts(1 << 62, 100)
            ledger.record_alerts(alerts)
        results["fire_and_record_100_ms"] = (time.process_time() - start) / cycles * 1e3
        now = T0 + SPREAD_MS

        def scan_tick() -> int:
            return sum(1 for e in store.scan() for d in e.deadlines
                       if d.due_at <= now and e.settled_at(d.step) is None)
        results["scan_tick_ms"] = per_call_us(scan_tick, 1) / 1e3
        start = time.process_time()
        funnel(store.scan(), now, timezone="America/Chicago")
        results["report_s"] = time.process_time() - start
        if kind == "sqlite":
            results.update(sqlite_sizes(Path(tmp) / "referrals.db"))
        store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "memory"],
                        choices=["sqlite", "memory"])
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=2000)
    parser.add_argument("--child", choices=["sqlite", "memory"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.child, args.referrals, args.ticks)))
        return
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}
    print(f"referral timers: {args.referrals:,} open referrals, 3 service levels each "
          f"(figures are noisy on a shared machine)")
    for kind in args.stores:
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--referrals",
                              str(args.referrals), "--ticks", str(args.ticks)],
                             check=True, capture_output=True, text=True, env=env)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"\n[{kind}]")
        print(f"  load                 {r['load_referrals_per_s']:>10,.0f} referrals/s "
              f"({r['timers']:,.0f} timers)")
        print(f"  idle tick            {r['idle_tick_us']:>10.1f} us CPU")
        print(f"  busy tick (100 due)  {r['busy_tick_us']:>10.1f} us CPU "
              f"({r['busy_tick_us_per_alert']:.1f} us per alert)")
        print(f"  fire + record 100    {r['fire_and_record_100_ms']:>10.1f} ms CPU")
        print(f"  scan-per-tick design {r['scan_tick_ms']:>10.1f} ms CPU per tick "
              f"(x{r['scan_tick_ms'] * 1e3 / max(r['idle_tick_us'], 0.001):,.0f} the "
              "idle tick)")
        print(f"  report over all      {r['report_s']:>10.2f} s CPU")
        print(f"  peak RSS             {r['peak_rss_mib']:>10.1f} MiB")
        if "file_mib" in r:
            index = r.get("referral_timers_by_due_mib")
            table = r.get("referral_timers_mib")
            print(f"  SQLite file          {r['file_mib']:>10.1f} MiB"
                  + (f" (timer table {table:.1f} MiB, due-time index {index:.1f} MiB)"
                     if index is not None and table is not None else ""))


if __name__ == "__main__":
    main()
