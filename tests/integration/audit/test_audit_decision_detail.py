"""Decisions from the policy engine go into the audit log as their documented detail.

The router may hand over `Decision.canonical_json()` (cheap) instead of `to_dict()`;
both must store the same canonical bytes, or an auditor's re-verification would fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.audit import AuditEntry, SqliteAuditStore, verify
from broker.audit.records import CanonicalDetail, canonical_detail
from policy import ConsentView
from tests.integration.audit.conftest import demo_birth


@pytest.fixture(scope="module")
def birth_decisions():
    engine, schema, record = demo_birth()
    subscriptions = engine.subscriptions_for("birth", "county-general", record)
    assert subscriptions
    return [
        engine.decide("birth", schema.version, record, "county-general", subscription.id,
                      ConsentView(), 1_794_061_200_000)
        for subscription in subscriptions
    ]


def test_canonical_json_and_to_dict_store_the_same_bytes(birth_decisions):
    for decision in birth_decisions:
        assert canonical_detail("decision", CanonicalDetail(decision.canonical_json())) == (
            canonical_detail("decision", decision.to_dict())
        )


def test_decision_detail_holds_no_field_values(birth_decisions):
    example = json.loads((Path(__file__).resolve().parents[3] / "schemas" / "events"
                          / "birth.example.json").read_text())
    values = [example["subject_id"], example["mother"]["ssn"], example["mother"]["phone"],
              example["mother"]["first_name"], example["child"]["first_name"]]
    for decision in birth_decisions:
        detail = canonical_detail("decision", decision.to_dict())
        for value in values:
            assert value not in detail


def test_appended_decisions_verify(tmp_path, birth_decisions):
    with SqliteAuditStore(tmp_path / "audit.db") as store:
        store.append([
            AuditEntry(kind="decision", at_ms=1, recipient=decision.recipient,
                       outcome=decision.outcome, decision_id=decision.decision_id,
                       detail=CanonicalDetail(decision.canonical_json()))
            for decision in birth_decisions
        ])
        assert verify(store).ok
        stored = [record.detail for record in store.iter_records()]
    assert stored == [decision.to_dict() for decision in birth_decisions]
