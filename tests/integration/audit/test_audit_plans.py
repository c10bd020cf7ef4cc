"""Decision plans stored once in the embedded chain: written the first time the chain
needs them, read back into full decisions, and proven by verify (tampering named)."""

from __future__ import annotations

import hashlib
import json

import pytest

from broker.audit import AuditEntry, AuditFilter, CheckpointSigner, SqliteAuditStore, verify
from broker.audit.export import export_jsonl
from broker.audit.paths import audit_db_path, signing_key_path
from broker.audit.plans import PLAN_KIND, DecisionDetail
from broker.audit.records import CanonicalDetail
from broker.errors import AuditError
from policy import ConsentView
from tests.integration.audit.conftest import BIRTH_DECISION, demo_birth

AT_MS = 1_794_061_200_000


@pytest.fixture(scope="module")
def plans():
    """Two real plans of the demo bundle: (subscription, plan) for hv-births, eval-births."""
    return demo_birth()


def entries(plans, pseudonymizer, count, start=0, subject_record=None):
    """Decisions as the router hands them over: compact, with their plan."""
    engine, schema, record = plans
    made = []
    for n in range(start, start + count):
        subscription = "hv-births" if n % 2 else "eval-births"
        decision = engine.decide("birth", schema.version, {**record, "event_id": f"ev-{n}"},
                                 "county-general", subscription, ConsentView(), AT_MS + n)
        made.append((decision, AuditEntry(
            kind="decision", at_ms=AT_MS + n, subject=pseudonymizer.pseudonym(f"MPI-{n % 3}"),
            recipient=decision.recipient, source="county-general",
            agreement=decision.agreement_id, subscription=subscription,
            outcome=decision.outcome, event_id=f"ev-{n}", decision_id=decision.decision_id,
            actor="router", detail=DecisionDetail(decision.compact_json(subject_record),
                                                  decision.plan.digest,
                                                  decision.plan.canonical_json))))
    return made


@pytest.fixture
def planned(store, plans, pseudonymizer, data_dir):
    """40 compact decisions of two plans, checkpointed; returns the decisions by event."""
    signer = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    made = entries(plans, pseudonymizer, 20) + entries(plans, pseudonymizer, 20, start=20)
    store.append([entry for _d, entry in made[:20]])
    store.append([entry for _d, entry in made[20:]])
    signer.checkpoint(store, at_ms=AT_MS + 100_000)
    return {entry.event_id: decision for decision, entry in made}


def plan_seqs(store):
    return [r.seq for r in store.iter_records(AuditFilter(kind=PLAN_KIND))]


def test_each_plan_is_written_once_before_its_first_decision(store, planned):
    kinds = [r.kind for r in store.iter_records()]
    assert kinds[:3] == [PLAN_KIND, "decision", PLAN_KIND]
    assert kinds.count(PLAN_KIND) == 2 and kinds.count("decision") == 40
    assert verify(store).ok


def test_a_reopened_store_knows_the_plans_its_chain_holds(data_dir, store, planned, plans,
                                                           pseudonymizer):
    store.close()
    with SqliteAuditStore(audit_db_path(data_dir)) as reopened:
        reopened.append([entry for _d, entry in entries(plans, pseudonymizer, 4, start=40)])
        assert len(plan_seqs(reopened)) == 2
        assert verify(reopened).ok


def test_readers_get_the_full_decision_back(store, planned, pseudonymizer):
    for record in store.iter_records(AuditFilter(kind="decision")):
        assert dict(record.detail) == planned[record.event_id].to_dict()
    page = store.page(AuditFilter(kind="decision", subscription="eval-births"), limit=5)
    assert page.records[0].to_dict()["detail"]["fields"]  # the API's JSON is the full one
    found = store.disclosures(AuditFilter(subject=pseudonymizer.pseudonym("MPI-1")))
    assert found and all(d.released and d.event_type == "birth" for d in found)
    assert found[0].legal_basis[0] == found[0].agreement


def test_the_export_holds_the_plans_and_verifies_as_documented(store, planned, tmp_path):
    out = tmp_path / "audit.jsonl"
    with out.open("w", encoding="utf-8") as handle:
        export_jsonl(store, handle)
    prev, plans_seen = "00" * 32, {}
    lines = out.read_text(encoding="utf-8").splitlines()
    for line in lines:
        record = json.loads(line)
        claimed = record.pop("hash")
        body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert hashlib.sha256(bytes.fromhex(prev) + body.encode()).hexdigest() == claimed
        prev = claimed
        detail_text = json.dumps(record["detail"], sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=False)
        if record["kind"] == PLAN_KIND:
            plans_seen[hashlib.sha256(detail_text.encode()).hexdigest()] = record["detail"]
        else:
            assert record["detail"]["plan"] in plans_seen
            assert len(detail_text) < 400  # compact: the explanation is in the plan
    assert len(lines) == 42


def test_an_altered_plan_record_breaks_the_chain_at_its_seq(data_dir, store, planned, tamper):
    seq = plan_seqs(store)[1]
    tamper("UPDATE audit_records SET detail = replace(detail, 'mother.ssn', 'mother.ssm') "
           f"WHERE seq = {seq}")
    report = verify(audit_db_path(data_dir))
    assert not report.ok
    assert report.problem == f"record {seq}: hash mismatch (content changed)"


def test_a_decision_naming_a_plan_the_chain_does_not_hold_fails_verify(
        store, plans, pseudonymizer):
    made = entries(plans, pseudonymizer, 3)
    # A writer that drops the plan: the chain's hashes are sound, the reference is not.
    store.append([AuditEntry(**{**{f: getattr(e, f) for f in e.__slots__},
                                "detail": CanonicalDetail(e.detail.text)})  # type: ignore[attr-defined]
                  for _d, e in made[:1]])
    report = verify(store)
    assert not report.ok and report.first_bad_seq == 1
    assert report.problem.startswith("record 1: its decision plan (")
    assert "MPI" not in report.problem
    (record,) = store.iter_records()  # still read and exported as written
    assert record.to_json_line()
    with pytest.raises(AuditError, match="record 1: the decision plan it names is missing"):
        dict(record.detail)


def test_a_plan_reference_replaced_by_another_fails_verify(store, plans, pseudonymizer):
    (decision, entry), = entries(plans, pseudonymizer, 1)
    forged = entry.detail.text.replace(decision.plan.digest, "0" * 64)  # type: ignore[attr-defined]
    store.append([entry, AuditEntry(**{**{f: getattr(entry, f) for f in entry.__slots__},
                                       "detail": CanonicalDetail(forged)})])
    report = verify(store)
    assert report.problem is not None and report.problem.startswith("record 3: its decision plan")


@pytest.mark.parametrize("statement", [
    "UPDATE audit_plans SET seq = seq + 1",
    "DELETE FROM audit_plans WHERE seq = (SELECT min(seq) FROM audit_plans)",
    "INSERT INTO audit_plans VALUES ('" + "ab" * 32 + "', 5)",
])
def test_an_altered_plan_index_is_named(data_dir, store, planned, tamper, statement):
    tamper(statement)
    report = verify(audit_db_path(data_dir))
    assert not report.ok
    assert "plan index (audit_plans)" in str(report.problem)


def test_full_decisions_of_an_older_version_still_read_and_verify_beside_compact_ones(
        store, decision, plans, pseudonymizer):
    store.append([decision("MPI-1", 1), decision("MPI-2", 2)])
    store.append([entry for _d, entry in entries(plans, pseudonymizer, 2)])
    records = list(store.iter_records(AuditFilter(kind="decision")))
    assert dict(records[0].detail) == BIRTH_DECISION
    assert "fields" in records[3].detail and "plan" not in records[3].detail
    assert verify(store).ok
