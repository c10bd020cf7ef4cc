"""Decision records with their plan stored once, against full decision records.

    python bench/audit_plans_bench.py                  # 200,000 decisions per form
    python bench/audit_plans_bench.py --records 50000 --batch 500

Decides the demo bundle's birth example for every subscription that receives it (its real
plans), with a new event id per event, then appends the decisions to an embedded audit
store as the router hands them over, in two forms, each into its own store:

- `full`: the whole explanation in every record (`Decision.canonical_json()`), as
  before plans were stored apart;
- `compact`: what varies per event plus the plan's digest (`Decision.compact_json()`),
  the plan written once into the chain (`DecisionDetail`), the entry built unchecked
  from compiled values (`compiled_entry`), as the router does now.

Prints, per form: CPU time per decision to build the audit entries (the detail and the
`AuditEntry`), records/s of CPU appended (entries built beforehand, as the router's
batch is), bytes hashed per decision, and the database size per decision (file and WAL,
indexes and daily counts included). Then verifies the compact store. The machine may be
shared: CPU figures are what matters; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.calibration import calibration_ms
from broker.audit import AuditEntry, CanonicalDetail, SqliteAuditStore, SubjectPseudonymizer
from broker.audit import verify as verify_store
from broker.audit.plans import DecisionDetail
from broker.audit.records import compiled_entry, encode_row
from policy import ConsentView, PolicyEngine, load_bundle
from policy.decision import Decision
from schemas.catalog import SchemaCatalog
from schemas.jsonform import record_from_json

REPO = Path(__file__).resolve().parents[1]
START_MS = 1_794_061_200_000


def demo_decisions(count: int) -> list[Decision]:
    """`count` events' decisions for every subscription receiving a demo birth."""
    catalog = SchemaCatalog.load()
    engine = PolicyEngine(load_bundle(REPO / "examples" / "demo" / "policy", catalog), catalog,
                          pseudonym_key=b"bench-key" * 4)
    schema = catalog.get("birth")
    record = record_from_json(schema.schema, schema.example)
    subscriptions = engine.subscriptions_for("birth", "county-general", record)
    made = []
    for n in range(count):
        event = {**record, "event_id": f"ev-{n:012d}"}
        made += [engine.decide("birth", schema.version, event, "county-general", sub.id,
                               ConsentView(), START_MS + n) for sub in subscriptions]
    return made


def entry(decision: Decision, subject: str, detail: CanonicalDetail) -> AuditEntry:
    """An entry as the router's `_record_decision` builds it: checked `AuditEntry` for
    the full form (as it was), `compiled_entry` for the compact form (as it is)."""
    make = compiled_entry if type(detail) is DecisionDetail else AuditEntry
    return make(
        "decision", decision.decision_time_ms, subject, decision.recipient, decision.source,
        decision.agreement_id, decision.subscription_id, decision.outcome, decision.event_id,
        decision.decision_id, "router", detail)


def full(decision: Decision) -> CanonicalDetail:
    return CanonicalDetail(decision.canonical_json())


def compact(decision: Decision) -> CanonicalDetail:
    plan = decision.plan
    return DecisionDetail(decision.compact_json(), plan.digest, plan.canonical_json)


def run(form: str, make: Callable[[Decision], CanonicalDetail], decisions: list[Decision],
        subjects: list[str], batch: int, work: Path) -> SqliteAuditStore:
    started = time.process_time()
    entries = [entry(d, subjects[n % len(subjects)], make(d)) for n, d in enumerate(decisions)]
    build = time.process_time() - started
    path = work / f"{form}.db"
    store = SqliteAuditStore(path)
    cpu = wall = 0.0
    for at in range(0, len(entries), batch):
        started, started_wall = time.process_time(), time.perf_counter()
        store.append(entries[at:at + batch])
        cpu += time.process_time() - started
        wall += time.perf_counter() - started_wall
    count = len(entries)
    hashed = sum(len(encode_row(r.to_row())) for r in store.iter_records(after=0)) / count
    store.close()  # folds the WAL into the file
    size = sum(p.stat().st_size for p in work.glob(f"{form}.db*"))
    print(f"{form:8} build entries {build / count * 1e6:5.1f} µs/decision; append "
          f"{count / cpu:8,.0f} records/s of CPU ({count / wall:,.0f}/s wall), batch {batch}; "
          f"{hashed:6,.0f} bytes hashed per decision; {size / count:6,.0f} bytes stored per "
          f"decision ({size / 1e6:.1f} MB for {count:,})")
    return SqliteAuditStore(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000,
                        help="decisions per form (default 200,000)")
    parser.add_argument("--batch", type=int, default=300,
                        help="append batch (default 300: 100 events to 3 subscriptions)")
    args = parser.parse_args()
    probe = demo_decisions(1)
    decisions = demo_decisions(max(1, args.records // len(probe)))
    plans = {d.plan.digest: len(d.plan.canonical_json) for d in decisions}
    print(f"{len(decisions):,} decisions of {len(plans)} demo plans "
          f"({', '.join(f'{size:,} bytes' for size in plans.values())} of plan JSON)")
    pseudonyms = SubjectPseudonymizer(b"p" * 32)
    subjects = [pseudonyms.pseudonym(f"MPI-{n:07d}") for n in range(50_000)]
    print(f"calibration loop: {calibration_ms():.0f} ms (higher than usual: a busy machine)")
    work = Path(tempfile.mkdtemp(prefix="handoff-audit-plans-"))
    try:
        run("full", full, decisions, subjects, args.batch, work).close()
        store = run("compact", compact, decisions, subjects, args.batch, work)
        started = time.process_time()
        report = verify_store(store)
        print(f"verify compact: {report.summary()[:40]}… in "
              f"{time.process_time() - started:.1f} s CPU")
        store.close()
    finally:
        print(f"calibration loop: {calibration_ms():.0f} ms")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
