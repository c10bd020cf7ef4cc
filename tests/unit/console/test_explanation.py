"""Reading a decision's explanation through `broker.audit.explanation` alone."""

from __future__ import annotations

from broker.audit import AuditRecord
from broker.audit.explanation import consent_change_view, decision_view


def _record(kind: str, detail: dict[str, object], **attrs: object) -> AuditRecord:
    base: dict[str, object] = {
        "seq": 7, "kind": kind, "at_ms": 1_000, "subject": "sp_" + "0" * 32,
        "recipient": "hv-nfp", "source": "county-general", "agreement": None,
        "subscription": "hv-births", "outcome": "permit", "event_id": "e1",
        "decision_id": "d1", "actor": "k", "detail": detail, "prev_hash": "0" * 64,
        "hash": "1" * 64}
    return AuditRecord.from_dict({**base, **attrs})


def test_a_decision_lists_every_field_with_status_reason_and_rules() -> None:
    view = decision_view(_record("decision", {
        "agreement_id": "cgh-hv-births", "bundle_version": "sha256:abc",
        "consent_ids": ["county-general/C-1"], "event_type": "birth",
        "purpose": "care_coordination", "legal_basis": ["cgh-hv-births", "45 CFR 164.506"],
        "obligations": [{"id": "notice", "text": "Do not redisclose."}],
        "fields": [
            {"path": "mother.phone", "status": "released", "transform": None,
             "reason": "in agreement", "rule_ids": [], "agreement_id": "cgh-hv-births"},
            {"path": "mother.zip", "status": "transformed", "transform": "zip3",
             "reason": "rule", "rule_ids": ["hipaa.zip"], "agreement_id": "cgh-hv-births"},
            {"path": "mother.ssn", "status": "withheld", "transform": None,
             "reason": "not in agreement", "rule_ids": [], "agreement_id": None}]},
        agreement="cgh-hv-births"))
    assert [(f.path, f.status) for f in view.fields] == [
        ("mother.phone", "released"), ("mother.zip", "transformed"),
        ("mother.ssn", "withheld")]
    assert view.with_status("transformed") == ("mother.zip",)
    assert view.rule_ids == ("hipaa.zip",)
    assert view.consent_ids == ("county-general/C-1",)
    assert view.obligations[0].id == "notice"
    assert (view.bundle_version, view.event_type) == ("sha256:abc", "birth")


def test_a_record_with_only_the_summary_lists_still_reads() -> None:
    view = decision_view(_record("decision", {"released": ["a"], "withheld": ["b"]}))
    assert [(f.path, f.status) for f in view.fields] == [("a", "released"), ("b", "withheld")]


def test_a_consent_change_names_how_decisions_rely_on_it() -> None:
    change = consent_change_view(_record("consent_change", {
        "consent_id": "CONSENT-P2-0042", "action": "GRANT", "recorded_by": "recovery-clinic",
        "code": "granted", "recipients": ["hv-nfp"], "purposes": ["care_coordination"],
        "categories": ["*"], "expires_at": "2027-01-01T00:00:00Z"}, outcome="granted"))
    assert change.relied_on_as == "recovery-clinic/CONSENT-P2-0042"
    assert change.recipients == ("hv-nfp",) and change.expires_at == "2027-01-01T00:00:00Z"
