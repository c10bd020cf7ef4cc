"""Audit log benchmark: append rate, verification time, disclosures query time.

    python bench/audit_bench.py                       # 1,000,000 records, 10,000,000 decisions
    python bench/audit_bench.py --records 200000 --decisions 2000000   # quicker

Decisions are 2.6 s apart (about a million a month). Phase 1 appends `--records`
decisions in batches (detail: a real birth decision from the
demo policy bundle, about 6.5 KB of JSON, handed over pre-encoded as the router does),
signing a checkpoint every 50,000 records, then verifies the whole chain with the public
key. Phase 2 grows the store to `--decisions` decisions (the extra ones with a small
detail, to fill quickly) and times the accounting of disclosures for one person whose
decisions (about `--subject-decisions`) are spread through the filled part, then pages
and counts as the compliance console asks for them. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from broker.audit import (
    AuditEntry,
    AuditFilter,
    AuditPage,
    CanonicalDetail,
    CheckpointSigner,
    SqliteAuditStore,
    SubjectPseudonymizer,
    verify,
)

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT_EVERY = 50_000
SUBJECT_POOL = 50_000
START_MS = 1_794_061_200_000
SPACING_MS = 2_600
"""Time between two decisions: about a million a month, as a busy state exchange."""


def demo_decision() -> tuple[str, str, str, Callable[[], dict]]:
    """(canonical JSON, event id, decision id, to_dict) of a real demo birth decision."""
    from policy import ConsentView, PolicyEngine, load_bundle
    from schemas.catalog import SchemaCatalog
    from schemas.jsonform import record_from_json

    catalog = SchemaCatalog.load()
    bundle = load_bundle(REPO / "examples" / "demo" / "policy", catalog)
    engine = PolicyEngine(bundle, catalog, pseudonym_key=b"bench-key" * 4)
    schema = catalog.get("birth")
    record = record_from_json(schema.schema, schema.example)
    decision = engine.decide("birth", schema.version, record, "county-general", "hv-births",
                             ConsentView(), START_MS)
    return decision.canonical_json(), decision.event_id, decision.decision_id, decision.to_dict


def decisions(
    template: str, event_id: str, decision_id: str, subjects: list[str], start: int,
    count: int, batch: int,
) -> Iterator[list[AuditEntry]]:
    """Batches of decision entries whose detail differs per event, as the router's do."""
    entries: list[AuditEntry] = []
    for n in range(start, start + count):
        new_event, new_decision = f"ev-{n:012d}", f"{n:032x}"
        detail = template.replace(event_id, new_event).replace(decision_id, new_decision)
        entries.append(AuditEntry(
            kind="decision", at_ms=START_MS + n * SPACING_MS, subject=subjects[n % len(subjects)],
            recipient="hv-nfp", source="county-general", agreement="cg-hv-births",
            subscription="hv-births", outcome="permit" if n % 4 else "deny",
            event_id=new_event, decision_id=new_decision, actor="router",
            detail=CanonicalDetail(detail),
        ))
        if len(entries) == batch:
            yield entries
            entries = []
    if entries:
        yield entries


def timed_append(store: SqliteAuditStore, batches: Iterator[list[AuditEntry]],
                 signer: CheckpointSigner | None = None) -> tuple[int, float, float]:
    """Append every batch; return (records, wall seconds, CPU seconds) inside append.

    The machine is shared, so CPU time is printed beside wall time: it is what the
    append costs this process, whatever else runs."""
    records, wall, cpu, next_checkpoint = 0, 0.0, 0.0, CHECKPOINT_EVERY
    for batch in batches:
        started, started_cpu = time.perf_counter(), time.process_time()
        store.append(batch)
        wall += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
        records += len(batch)
        if signer is not None and records >= next_checkpoint:
            signer.checkpoint(store)
            next_checkpoint += CHECKPOINT_EVERY
    return records, wall, cpu


def rates(records: int, wall: float, cpu: float) -> str:
    return (f"{records / wall:,.0f} records/s wall, {records / cpu:,.0f} records/s of CPU "
            f"({records:,} records in {wall:.1f} s)")


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def phase_append_and_verify(args: argparse.Namespace, work: Path,
                            pseudonyms: list[str]) -> SqliteAuditStore:
    template, event_id, decision_id, to_dict = demo_decision()
    print(f"detail: demo birth decision for hv-births, {len(template.encode()):,} bytes "
          "of canonical JSON")

    # The cost of handing over to_dict() instead of canonical_json(), on a side store.
    with SqliteAuditStore(work / "to_dict.db") as side:
        sample = [AuditEntry(kind="decision", at_ms=START_MS + n, subject=pseudonyms[n],
                             recipient="hv-nfp", detail=to_dict()) for n in range(20_000)]
        print(f"append, detail as to_dict(), batch {args.batch}: " + rates(*timed_append(
            side, iter([sample[i:i + args.batch] for i in range(0, len(sample), args.batch)])
        )))

    path = work / "audit.db"
    store = SqliteAuditStore(path)
    signer = CheckpointSigner.load_or_create(work / "keys" / "audit-signing.pem")
    count, wall, cpu = timed_append(
        store, decisions(template, event_id, decision_id, pseudonyms, 0, args.records,
                         args.batch), signer)
    signer.checkpoint(store)
    print(f"append, detail pre-encoded (router path), batch {args.batch}: "
          f"{rates(count, wall, cpu)}; target >= 20,000/s")
    size = path.stat().st_size
    print(f"database file: {size / 1e9:.2f} GB, {size / count:,.0f} bytes per record "
          f"(+ WAL {(db_bytes(path) - size) / 1e6:.0f} MB)")

    started, started_cpu = time.perf_counter(), time.process_time()
    report = verify(store, signer.public_key)
    took, took_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    print(f"verify: {report.summary()[:60]}…")
    print(f"verify: {report.records_checked:,} records and {report.checkpoints_checked} "
          f"checkpoints in {took:.1f} s wall, {took_cpu:.1f} s CPU = "
          f"{1_000_000 / report.records_checked * took:.1f} s per million "
          "(target: 1,000,000 in < 30 s)")
    return store


def phase_disclosures(args: argparse.Namespace, store: SqliteAuditStore,
                      pseudonyms: list[str], person: str) -> None:
    have = store.head()[0]
    grow = max(0, args.decisions - have)
    # The person's decisions are spread evenly over the whole log.
    spacing = max(1, args.decisions // args.subject_decisions)
    small = json.dumps({"event_type": "birth", "purpose": "care_coordination",
                        "released": ["mother.first_name", "mother.phone"],
                        "legal_basis": ["45 CFR 164.506(c)(4)"], "consent_ids": []},
                       sort_keys=True, separators=(",", ":"))

    def filler() -> Iterator[list[AuditEntry]]:
        entries: list[AuditEntry] = []
        for n in range(have, have + grow):
            subject = person if n % spacing == 0 else pseudonyms[n % len(pseudonyms)]
            entries.append(AuditEntry(
                kind="decision", at_ms=START_MS + n * SPACING_MS, subject=subject,
                recipient="hv-nfp",
                subscription="hv-births", outcome="permit", event_id=f"ev-{n:012d}",
                decision_id=f"{n:032x}", detail=CanonicalDetail(small)))
            if len(entries) == 1000:
                yield entries
                entries = []
        if entries:
            yield entries

    started = time.perf_counter()
    added, wall, cpu = timed_append(store, filler())
    if added:
        print(f"filled to {store.head()[0]:,} decisions in {time.perf_counter() - started:.0f}"
              f" s; append with small detail, batch 1000: {rates(added, wall, cpu)}")
    path = store.path
    store.close()
    print(f"database: {db_bytes(path) / 1e9:.2f} GB")

    with SqliteAuditStore(path, create=False) as reopened:
        started = time.perf_counter()
        found = reopened.disclosures(AuditFilter(subject=person))
        cold = time.perf_counter() - started
        warm = []
        for _ in range(5):
            started = time.perf_counter()
            reopened.disclosures(AuditFilter(subject=person))
            warm.append(time.perf_counter() - started)
        print(f"disclosures: {len(found):,} for one person among {reopened.head()[0]:,} "
              f"decisions: first {cold * 1000:.1f} ms, then median "
              f"{statistics.median(warm) * 1000:.1f} ms (target < 1 s)")
        # A window of 1% of the log, well into it.
        total = reopened.head()[0]
        since = START_MS + total // 2 * SPACING_MS
        window = AuditFilter(recipient="hv-nfp", since_ms=since,
                             until_ms=since + total // 100 * SPACING_MS)
        page = timed(f"page: recipient within a window of {total // 100:,} records, first "
                     "page of 100", lambda: reopened.page(window, limit=100))
        for _ in range(48):
            page = reopened.page(window, cursor=page.cursor, limit=100)
        timed("page: the same, page 50 (keyset cursor)",
              lambda: reopened.page(window, cursor=page.cursor, limit=100))
        timed("page: agreement + outcome, first page of 100",
              lambda: reopened.page(AuditFilter(agreement="cg-hv-births", outcome="deny"),
                                    limit=100))
        timed("page: every decision, newest first, first page of 100",
              lambda: reopened.page(AuditFilter(kind="decision"), limit=100, newest_first=True))
        for share in (100, 10):
            period = AuditFilter(kind="decision", since_ms=since + 12_345,
                                 until_ms=since + total // share * SPACING_MS)
            timed(f"count: by agreement and outcome, decisions in a period of "
                  f"{total // share:,} records",
                  lambda period=period: reopened.count(period, by=("agreement", "outcome")))
        timed(f"count: every record by kind ({total:,})",
              lambda: reopened.count(AuditFilter(), by=("kind",)))


def timed(label: str, read: Callable[[], object]) -> object:
    """Run `read` once, print how long it took and how much it found."""
    started = time.perf_counter()
    found = read()
    took = (time.perf_counter() - started) * 1000
    size = len(found.records) if isinstance(found, AuditPage) else (
        sum(item.count for item in found) if isinstance(found, tuple) else found)
    print(f"{label}: {took:.1f} ms ({size:,} records)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="decisions to append and verify (default 1,000,000)")
    parser.add_argument("--decisions", type=int, default=10_000_000,
                        help="decisions stored for the disclosures query (default 10,000,000)")
    parser.add_argument("--subject-decisions", type=int, default=200,
                        help="decisions about the person whose disclosures are listed")
    parser.add_argument("--batch", type=int, default=100, help="append batch size")
    parser.add_argument("--dir", type=Path, default=None,
                        help="work directory (default: a temporary one, removed after)")
    args = parser.parse_args()

    work = args.dir or Path(tempfile.mkdtemp(prefix="audit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"audit bench in {work}")
    pseudonymizer = SubjectPseudonymizer(b"bench-pseudonym-key-0123456789ab")
    pseudonyms = [pseudonymizer.pseudonym(f"MPI-{n:07d}") for n in range(SUBJECT_POOL)]
    person = pseudonymizer.pseudonym("MPI-9048213")  # outside the pool above
    try:
        store = phase_append_and_verify(args, work, pseudonyms)
        phase_disclosures(args, store, pseudonyms, person)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
