"""Console page benchmark: every page of the compliance console over a large audit log.

    python bench/console_pages.py                      # 1,000,000 audit records
    python bench/console_pages.py --records 100000     # quicker

Fills an embedded audit store with `--records` real decisions of the demo policy (every
subscription the demo's example events reach, permitted and denied, about 6.5 KB of
detail each, 2.6 s apart, over a pool of 50,000 people, with a consent history for
one of them and a signed checkpoint every 50,000 records), builds the broker over it
with the demo policy and keys, signs in as the demo auditor and requests every page
`--rounds` times in process (Starlette's test client: the server's work, rendering and
auditing each view included, without a network). Prints p50 and p99 per page against
the 300 ms target; asserts nothing. The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.audit import (
    AuditEntry,
    CanonicalDetail,
    CheckpointSigner,
    SqliteAuditStore,
    SubjectPseudonymizer,
    load_or_create_pseudonym_key,
)
from broker.audit.paths import audit_db_path, pseudonym_key_path, signing_key_path
from broker.bootstrap import build_broker
from broker.config import load_settings
from policy import ConsentView, PolicyEngine, load_bundle
from schemas.catalog import SchemaCatalog
from schemas.jsonform import record_from_json

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo"
START_MS = 1_794_061_200_000
SPACING_MS = 2_600
PEOPLE = 50_000
CHECKPOINT_EVERY = 50_000
TARGET_MS = 300.0


def demo_keys() -> dict[str, str]:
    keys = {}
    for line in (DEMO / "keys.env").read_text().splitlines():
        if line.startswith("HANDOFF_DEMO_KEY_"):
            name, value = line.removeprefix("HANDOFF_DEMO_KEY_").split("=", 1)
            keys[name.lower()] = value
    return keys


def templates() -> list[tuple[dict[str, str | None], str]]:
    """(attributes, canonical detail) of one real decision per reachable subscription."""
    catalog = SchemaCatalog.load()
    bundle = load_bundle(DEMO / "policy", catalog)
    engine = PolicyEngine(bundle, catalog, pseudonym_key=b"bench-key" * 4)
    found = []
    for sub in bundle.subscriptions.values():
        for event_type in sub.event_types:
            schema = catalog.get(event_type)
            record = record_from_json(schema.schema, schema.example)
            for source in sub.sources or sorted(bundle.agencies):
                decision = engine.decide(event_type, schema.version, record, source, sub.id,
                                         ConsentView(), START_MS)
                found.append(({"recipient": decision.recipient, "source": source,
                               "agreement": decision.agreement_id, "subscription": sub.id,
                               "outcome": decision.outcome}, decision.canonical_json()))
                break
    return found


def entries(count: int, people: list[str]) -> Iterator[list[AuditEntry]]:
    shapes = templates()
    batch: list[AuditEntry] = []
    for n in range(count):
        attrs, detail = shapes[n % len(shapes)]
        batch.append(AuditEntry(
            kind="decision", at_ms=START_MS + n * SPACING_MS, subject=people[n % len(people)],
            event_id=f"ev-{n:012d}", decision_id=f"{n:032x}", actor="router",
            detail=CanonicalDetail(detail), **attrs))
        if len(batch) == 1000:
            yield batch
            batch = []
    if batch:
        yield batch


def consents(subject: str, at_ms: int) -> list[AuditEntry]:
    terms = {"recipients": ["hv-nfp"], "purposes": ["care_coordination"],
             "categories": ["health"], "disclosers": [], "effective_at": None,
             "expires_at": None}
    return [AuditEntry(kind="consent_change", at_ms=at_ms + i, subject=subject,
                       source="county-general", outcome=outcome, actor="bench",
                       detail={"consent_id": "C-1", "action": action, "code": outcome,
                               "recorded_by": "county-general", "reason": "", "fields": [],
                               **terms})
            for i, (action, outcome) in enumerate((("GRANT", "granted"),
                                                   ("REVOKE", "revoked")))]


def fill(data: Path, records: int) -> tuple[str, int]:
    """Fill the store; returns (a person's pseudonym, the last record's time)."""
    pseudonymizer = SubjectPseudonymizer(load_or_create_pseudonym_key(pseudonym_key_path(data)))
    people = [pseudonymizer.pseudonym(f"MPI-{i:07d}") for i in range(PEOPLE)]
    signer = CheckpointSigner.load_or_create(signing_key_path(data))
    started = time.perf_counter()
    with SqliteAuditStore(audit_db_path(data)) as store:
        written = 0
        for batch in entries(records, people):
            store.append(batch)
            written += len(batch)
            if written % CHECKPOINT_EVERY == 0:
                signer.checkpoint(store)
        store.append(consents(people[7], START_MS))
        signer.checkpoint(store)
    print(f"filled {records:,} decisions in {time.perf_counter() - started:.0f} s")
    return people[7], START_MS + records * SPACING_MS


def measure(client: TestClient, path: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: {answer.status_code} {answer.text[:300]}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="handoff-console-bench-"))
    try:
        data = work / "data"
        person, end_ms = fill(data, args.records)
        settings = load_settings(policy_dir=DEMO / "policy", data_dir=data,
                                 keys_file=DEMO / "keys.yaml")
        broker = build_broker(settings, clock=lambda: end_ms, router_thread=False)
        try:
            run(broker, person, args.rounds)
        finally:
            broker.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(broker: object, person: str, rounds: int) -> None:
    with TestClient(create_app(broker.api), base_url="http://console.test",  # type: ignore[attr-defined]
                    follow_redirects=False) as client:
        form = client.get("/console/login").text
        token = re.search(r'name="login_token" value="([^"]+)"', form)
        assert token is not None
        signed = client.post("/console/login", headers={"Origin": "http://console.test"},
                             data={"login_token": token.group(1),
                                   "api_key": demo_keys()["auditor"]})
        assert signed.status_code == 303, signed.text
        listing = client.get("/console/decisions?recipient=hv-nfp").text
        deep = re.findall(r"cursor=(\d+)", listing)
        seq = re.findall(r'href="/console/decisions/(\d+)"', listing)[0]
        pages = [
            "/console/map", "/console/map?days=365", "/console/map/agreements/cgh-hv-births",
            "/console/decisions", "/console/decisions?recipient=hv-nfp&outcome=deny",
            f"/console/decisions?cursor={deep[0] if deep else ''}",
            f"/console/decisions?subject={person}", f"/console/decisions/{seq}",
            f"/console/accounting?subject={person}",
            f"/console/accounting.csv?subject={person}",
            f"/console/accounting.pdf?subject={person}",
            f"/console/consents?subject={person}", "/console/policy",
            "/console/integrity", "/console/flow", "/console/flow/data",
            "/console/referrals", "/console/linkage",
        ]
        print(f"{'page':<62} {'p50 ms':>8} {'p99 ms':>8}")
        for path in pages:
            measure(client, path, 2)  # warm caches, as a console in use has them
            times = sorted(measure(client, path, rounds))
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            flag = "" if p99 < TARGET_MS else f"  over {TARGET_MS:.0f} ms"
            print(f"{path[:62]:<62} {statistics.median(times):8.1f} {p99:8.1f}{flag}")


if __name__ == "__main__":
    main()
