"""A compact decision record plus its plan is exactly the decision's full detail.

Decisions come from the demo policy bundle: a permit, a permit with transformed fields,
a deny, one with consent ids relied on, one about a linked agency record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.audit.plans import (
    PLAN_KIND,
    DecisionDetail,
    PlanWitness,
    expand_decision,
    plan_digest,
    plan_reference,
)
from broker.audit.records import canonical_detail
from policy import ConsentView, PolicyEngine, load_bundle
from policy.decision import Decision, compact_event_part, compact_linked_part
from schemas.catalog import SchemaCatalog
from schemas.jsonform import record_from_json

DEMO_POLICY = Path(__file__).resolve().parents[3] / "examples" / "demo" / "policy"
AT_MS = 1_794_061_200_000
LINKED = "sp_" + "5" * 32


@pytest.fixture(scope="module")
def decisions() -> dict[str, Decision]:
    catalog = SchemaCatalog.load()
    engine = PolicyEngine(load_bundle(DEMO_POLICY, catalog), catalog, pseudonym_key=b"k" * 32)
    schema = catalog.get("birth")
    record = record_from_json(schema.schema, schema.example)

    def decide(subscription: str) -> Decision:
        return engine.decide("birth", schema.version, record, "county-general", subscription,
                             ConsentView(), AT_MS)

    permit, transformed, deny = decide("hv-births"), decide("eval-births"), decide("hv-referrals")
    with_consents = Decision(permit.plan, "ev-consented", AT_MS + 5,
                             consent_ids=("recovery-clinic/CONSENT-P2-0042", "cgh/C-7"))
    return {"permit": permit, "transformed": transformed, "deny": deny,
            "consents": with_consents}


@pytest.mark.parametrize("name", ["permit", "transformed", "deny", "consents"])
@pytest.mark.parametrize("subject_record", [None, LINKED])
def test_a_compact_record_expands_to_exactly_the_full_detail(decisions, name, subject_record):
    decision = decisions[name]
    plan = decision.plan
    compact = decision.compact_json(subject_record)
    detail = DecisionDetail(compact, plan.digest, plan.canonical_json)
    full = decision.to_dict(subject_record)
    assert dict(detail) == full
    assert canonical_detail("decision", detail) == compact  # what is hashed and stored
    assert expand_decision(json.loads(compact), json.loads(plan.canonical_json)) == full
    assert json.loads(compact)["plan"] == plan_digest(plan.canonical_json) == plan.digest


@pytest.mark.parametrize("name", ["permit", "transformed", "deny", "consents"])
@pytest.mark.parametrize("subject_record", [None, LINKED])
def test_a_compact_record_from_its_events_shared_parts_is_the_same_canonical_json(
        decisions, name, subject_record):
    """The router works out the event's parts once for all its decisions."""
    decision = decisions[name]
    text = decision.compact_json_of(
        compact_event_part(decision.decision_time_ms, decision.event_id),
        compact_linked_part(subject_record))
    assert text == decision.compact_json(subject_record)
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert json.loads(text)["event_id"] == decision.event_id


def test_the_cases_cover_what_they_claim(decisions):
    assert decisions["permit"].outcome == "permit"
    assert decisions["transformed"].transformed
    assert decisions["deny"].outcome == "deny"
    assert decisions["consents"].to_dict()["consent_ids"] == [
        "recovery-clinic/CONSENT-P2-0042", "cgh/C-7"]


def test_a_compact_decision_is_a_small_fraction_of_the_full_one(decisions):
    decision = decisions["permit"]
    assert len(decision.compact_json(LINKED)) < 400 < 6000 < len(decision.canonical_json())


def test_the_plan_is_the_same_object_for_every_event_and_hashed_once(decisions):
    plan = decisions["permit"].plan
    assert decisions["consents"].plan is plan
    assert plan.canonical_json is plan.canonical_json  # cached, not re-encoded
    assert plan.digest != decisions["transformed"].plan.digest


def test_a_full_decision_names_no_plan_and_reads_as_it_is(decisions):
    full = decisions["permit"].canonical_json()
    assert plan_reference("decision", full) is None
    assert plan_reference("consent_change", decisions["permit"].compact_json()) is None


def test_the_witness_accepts_a_plan_only_before_its_decisions_and_in_its_chain(decisions):
    decision = decisions["permit"]
    plan_text = decision.plan.canonical_json.encode()
    compact = decision.compact_json().encode()
    witness = PlanWitness()
    assert witness.check("a", "decision", compact) is not None  # plan not yet seen
    assert witness.check("a", PLAN_KIND, plan_text) is None
    assert witness.check("a", "decision", compact) is None
    assert witness.check("b", "decision", compact) is not None  # another chain
    altered = plan_text.replace(b"mother.ssn", b"mother.ssm")
    witness.check("c", PLAN_KIND, altered)
    assert "not a plan record earlier" in str(witness.check("c", "decision", compact))
