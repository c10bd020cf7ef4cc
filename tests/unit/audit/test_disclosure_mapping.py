"""Reading permitted decisions as entries of the accounting of disclosures."""

from __future__ import annotations

import pytest

from broker.audit import AuditRecord
from broker.audit.disclosures import disclosure_from_record, is_disclosure

PSEUDONYM = "sp_" + "cd" * 16


def record(kind="decision", outcome="permit", detail=None, **attributes):
    values = {
        "seq": 12, "kind": kind, "at_ms": 1_717_243_200_000, "subject": PSEUDONYM,
        "recipient": "hv-nfp", "source": "county-general", "agreement": "cg-hv-births",
        "subscription": "hv-births", "outcome": outcome, "event_id": "ev-1",
        "decision_id": "d" * 32, "actor": "router", "detail": detail or {},
        "prev_hash": "00" * 32, "hash": "11" * 32,
    }
    values.update(attributes)
    return AuditRecord(**values)


@pytest.mark.parametrize(
    ("kind", "outcome", "expected"),
    [
        ("decision", "permit", True),
        ("decision", "deny", False),
        ("publish_refused", "permit", False),
        ("consent_change", "granted", False),
    ],
)
def test_only_permitted_decisions_are_disclosures(kind, outcome, expected):
    assert is_disclosure(record(kind=kind, outcome=outcome)) is expected


DECISION_AS_PATH_LISTS = {
    "event_type": "birth",
    "purpose": "care_coordination",
    "released": ["mother.given_name", "mother.phone"],
    "transformed": ["mother.address.zip"],
    "withheld": ["mother.ssn"],
    "legal_basis": ["45 CFR 164.506(c)", "45 CFR 164.508"],
    "consent_ids": ["consent-77"],
}
DECISION_AS_OBJECTS = {
    "event_type": "birth",
    "purpose": "care_coordination",
    "released": [{"path": "mother.given_name"}, {"path": "mother.phone"}],
    "transformed": [{"path": "mother.address.zip", "transform": "zip3"}],
    "withheld": [{"path": "mother.ssn", "reason": "not in agreement"}],
    "legal_basis": [{"citation": "45 CFR 164.506(c)"}, {"citation": "45 CFR 164.508"}],
    "consent_ids": ["consent-77"],
}
DECISION_AS_FIELD_LIST = {
    "event_type": "birth",
    "purpose": "care_coordination",
    "fields": [
        {"path": "mother.given_name", "status": "released"},
        {"path": "mother.phone", "status": "released"},
        {"path": "mother.address.zip", "status": "transformed"},
        {"path": "mother.ssn", "status": "withheld"},
    ],
    "legal_basis": "45 CFR 164.506(c)",
    "consent_ids": ["consent-77"],
}


@pytest.mark.parametrize(
    ("detail", "legal_basis"),
    [
        (DECISION_AS_PATH_LISTS, ("cg-hv-births", "45 CFR 164.506(c)", "45 CFR 164.508")),
        (DECISION_AS_OBJECTS, ("cg-hv-births", "45 CFR 164.506(c)", "45 CFR 164.508")),
        (DECISION_AS_FIELD_LIST, ("cg-hv-births", "45 CFR 164.506(c)")),
    ],
)
def test_disclosure_lists_what_was_disclosed_to_whom_and_why(detail, legal_basis):
    disclosure = disclosure_from_record(record(detail=detail))
    assert disclosure.date == "2024-06-01T12:00:00Z"
    assert disclosure.recipient == "hv-nfp"
    assert disclosure.subscription == "hv-births"
    assert disclosure.event_type == "birth"
    assert disclosure.data_disclosed == (
        "mother.given_name", "mother.phone", "mother.address.zip"
    )
    assert "mother.ssn" not in disclosure.data_disclosed
    assert disclosure.purpose == "care_coordination"
    assert disclosure.legal_basis == legal_basis
    assert disclosure.consent_ids == ("consent-77",)
    assert disclosure.decision_id == "d" * 32


def test_agreement_falls_back_to_the_decision_detail():
    disclosure = disclosure_from_record(
        record(agreement=None, detail={"agreement_id": "vr-hv", "released": []})
    )
    assert disclosure.agreement == "vr-hv"
    assert disclosure.legal_basis == ("vr-hv",)
