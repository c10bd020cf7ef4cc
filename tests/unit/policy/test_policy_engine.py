"""The engine over the demo bundle: routing, views, decision values, and invariants that
must hold for every subscription."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import fastavro
import pytest
from policy_cases import AT, DEMO, KEY, engine_for, example, grant, ms

from policy import ConsentView, PolicyError, UnknownSubscriptionError

# (subscription, event type, source) for every route of the demo bundle.
DEMO_ROUTES = [
    ("hv-births", "birth", "county-general"),
    ("hv-referrals", "referral", "cw-hotline"),
    ("hv-sud-enrollments", "enrollment", "recovery-clinic"),
    ("cw-birth-matches", "birth_match", "vital-records"),
    ("eval-births", "birth", "county-general"),
    ("eval-enrollments", "enrollment", "hv-nfp"),
    ("school-ei-transitions", "enrollment", "birth-to-three"),
    ("medicaid-hv-enrollments", "enrollment", "hv-nfp"),
]
ENGINE = engine_for(DEMO)


def everything_consented() -> ConsentView:
    """The most permissive consents imaginable: every recipient, purpose and category,
    recorded by every agency for its own data."""
    purposes = {s.purpose for s in DEMO.subscriptions.values()}
    view = ConsentView()
    for agency in DEMO.agencies:
        view.apply(grant("C-ALL", recipients=list(DEMO.agencies), purposes=sorted(purposes)),
                   ms("2026-01-01"), agency)
    return view


CONSENT_STATES = {"no consent": ConsentView, "everything consented": everything_consented}


def values_in(record: Any) -> list[str]:
    if isinstance(record, dict):
        return [v for value in record.values() for v in values_in(value)]
    if isinstance(record, list):
        return [v for value in record for v in values_in(value)]
    return [] if record is None or isinstance(record, bool) else [str(record)]


def shaped_for(event_type: str, route_filter: dict[str, Any]) -> dict[str, Any]:
    record = example(event_type)
    for path, wanted in route_filter.items():
        node = record
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = wanted[0] if isinstance(wanted, list) else wanted
    return record


@pytest.mark.parametrize("consent_state", list(CONSENT_STATES))
@pytest.mark.parametrize(("subscription", "event_type", "source"), DEMO_ROUTES)
def test_demo_never_releases_the_ssn(subscription: str, event_type: str, source: str,
                                     consent_state: str) -> None:
    record = shaped_for(event_type, DEMO.subscriptions[subscription].filter)
    decision = ENGINE.decide(event_type, 1, record, source, subscription,
                             CONSENT_STATES[consent_state](), AT)
    if event_type == "birth":
        assert decision.field("mother.ssn").status == "withheld"
    assert "512-44-9031" not in values_in(decision.view)


@pytest.mark.parametrize("consent_state", list(CONSENT_STATES))
@pytest.mark.parametrize(("subscription", "event_type", "source"), DEMO_ROUTES)
def test_every_view_is_writable_with_its_view_schema(
        subscription: str, event_type: str, source: str, consent_state: str) -> None:
    parsed = fastavro.parse_schema(ENGINE.view_schema(subscription, event_type, 1))
    record = shaped_for(event_type, DEMO.subscriptions[subscription].filter)
    decision = ENGINE.decide(event_type, 1, record, source, subscription,
                             CONSENT_STATES[consent_state](), AT)
    if decision.view is None:
        assert decision.outcome == "deny"
        return
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, decision.view)
    buffer.seek(0)
    read_back = fastavro.schemaless_reader(buffer, parsed)
    assert set(read_back) == set(decision.view)


def test_view_is_writable_when_nested_optional_records_are_null() -> None:
    record = shaped_for("referral", DEMO.subscriptions["hv-referrals"].filter)
    record["child"] = None
    record["reporter"] = None
    parsed = fastavro.parse_schema(ENGINE.view_schema("hv-referrals", "referral", 1))
    decision = ENGINE.decide("referral", 1, record, "cw-hotline", "hv-referrals",
                             ConsentView(), AT)
    assert decision.view is not None and decision.view["child"] is None
    fastavro.schemaless_writer(io.BytesIO(), parsed, decision.view)


# -- what the demo tells ------------------------------------------------------------------


@pytest.mark.parametrize(("subscription", "event_type", "source", "expected"), [
    ("hv-births", "birth", "county-general",
     {"mother.phone": "released", "child.birth_weight_grams": "withheld",
      "mother.ssn": "withheld"}),
    ("hv-referrals", "referral", "cw-hotline",
     {"reason": "released", "allegation_summary": "withheld", "reporter.name": "withheld"}),
    ("eval-births", "birth", "county-general",
     {"subject_id": "transformed", "child.birth_date": "transformed",
      "mother.zip": "transformed", "mother.first_name": "withheld"}),
    ("cw-birth-matches", "birth_match", "vital-records",
     {"entry_id": "released", "child_birth_date": "released", "hospital_id": "released"}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_demo_story_without_consent(subscription: str, event_type: str, source: str,
                                    expected: dict[str, str]) -> None:
    record = shaped_for(event_type, DEMO.subscriptions[subscription].filter)
    decision = ENGINE.decide(event_type, 1, record, source, subscription, ConsentView(), AT)
    assert decision.outcome == "permit"
    assert {p: decision.field(p).status for p in expected} == expected


def test_demo_part2_enrollment_reaches_home_visiting_only_with_the_clinics_consent(
) -> None:
    record = example("enrollment")
    self_granted = ConsentView()
    self_granted.apply(grant(recipients=["hv-nfp"], disclosers=["recovery-clinic"]),
                       ms("2026-01-01"), "hv-nfp")
    clinics = ConsentView()
    clinics.apply(grant(recipients=["hv-nfp"]), ms("2026-01-01"),
                  "recovery-clinic")
    denied = ENGINE.decide("enrollment", 1, record, "recovery-clinic", "hv-sud-enrollments",
                           self_granted, AT)
    permitted = ENGINE.decide("enrollment", 1, record, "recovery-clinic",
                              "hv-sud-enrollments", clinics, AT)
    assert denied.outcome == "deny" and denied.view is None
    assert permitted.outcome == "permit"
    assert permitted.consent_ids == ("recovery-clinic/C-1",)
    assert permitted.field("participant.first_name").status == "released"
    assert [o.id for o in permitted.obligations] == ["cfr42.2-32-notice"]
    assert "42 CFR part 2" in permitted.obligations[0].text


# -- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "source", "expected"), [
    ({}, "cw-hotline", ["hv-referrals"]),
    ({"screening_decision": "SCREENED_IN"}, "cw-hotline", []),
    ({"referred_to_service": "EARLY_INTERVENTION"}, "cw-hotline", []),
    ({}, "recovery-clinic", []),
])
def test_subscriptions_for_matches_type_source_and_filter(
        changes: dict[str, Any], source: str, expected: list[str]) -> None:
    record = example("referral")
    record.update(changes)
    found = ENGINE.subscriptions_for("referral", source, record)
    assert [s.id for s in found] == expected


def test_subscriptions_for_an_unsubscribed_type_is_empty() -> None:
    assert ENGINE.subscriptions_for("screening", "county-general", example("screening")) == []


@pytest.mark.parametrize(("event_type", "source", "reason"), [
    ("referral", "cw-hotline", "does not receive referral events"),
    ("birth", "vital-records", "does not receive events from vital-records"),
])
def test_decide_outside_the_subscription_is_a_deny(event_type: str, source: str,
                                                    reason: str) -> None:
    decision = ENGINE.decide(event_type, 1, example(event_type), source, "hv-births",
                             ConsentView(), AT)
    assert decision.outcome == "deny"
    assert reason in (decision.deny_reason or "")
    assert all(f.status == "withheld" for f in decision.fields)


def test_unknown_subscription_is_an_error() -> None:
    with pytest.raises(UnknownSubscriptionError):
        ENGINE.decide("birth", 1, example("birth"), "county-general", "nope", ConsentView(), AT)


# -- the decision value -------------------------------------------------------------------


def decide_eval_births() -> Any:
    return ENGINE.decide("birth", 1, example("birth"), "county-general", "eval-births",
                         ConsentView(), AT)


def test_decision_lists_every_leaf_field_once() -> None:
    decision = decide_eval_births()
    paths = [f.path for f in decision.fields]
    assert paths == list(DEMO_SCHEMA_PATHS)
    assert sorted(decision.released + decision.transformed + decision.withheld) == sorted(paths)


DEMO_SCHEMA_PATHS = ENGINE.catalog.get("birth").paths


def test_decision_dict_holds_no_field_values() -> None:
    record = example("birth")
    decision = ENGINE.decide("birth", 1, record, "county-general", "hv-births",
                             everything_consented(), AT)
    text = json.dumps(decision.to_dict())
    # Digits alone could turn up inside a hash by chance; every other value must not.
    personal = [v for v in values_in(record) if len(v) > 3 and not v.isdigit()
                and v != record["event_id"]]
    assert personal, "the example should carry personal values"
    assert [v for v in personal if v in text] == []


def test_decision_id_is_stable_and_per_subscription() -> None:
    first, again = decide_eval_births(), decide_eval_births()
    other = ENGINE.decide("birth", 1, example("birth"), "county-general", "hv-births",
                          ConsentView(), AT)
    assert re.fullmatch(r"[0-9a-f]{32}", first.decision_id)
    assert first.decision_id == again.decision_id
    assert first.decision_id != other.decision_id


def test_decision_id_changes_with_the_bundle_version() -> None:
    import dataclasses

    changed = dataclasses.replace(DEMO, agencies={
        **DEMO.agencies, "hv-nfp": DEMO.agencies["hv-nfp"].model_copy(update={"name": "NFP"})})
    assert changed.version != DEMO.version
    other = engine_for(changed).decide("birth", 1, example("birth"), "county-general",
                                       "eval-births", ConsentView(), AT)
    assert other.decision_id != decide_eval_births().decision_id


def test_canonical_json_is_the_sorted_compact_dict() -> None:
    view = everything_consented()
    for subscription, event_type, source in DEMO_ROUTES:
        decision = ENGINE.decide(event_type, 1, example(event_type), source, subscription,
                                 view, AT)
        expected = json.dumps(decision.to_dict(), sort_keys=True, separators=(",", ":"))
        assert decision.canonical_json() == expected


def test_legal_basis_cites_the_agreement_and_the_rules() -> None:
    decision = decide_eval_births()
    assert decision.legal_basis[0].startswith("agreement cgh-eval-births")
    assert any("164.514(e)(2)" in b for b in decision.legal_basis)


def test_pseudonym_key_must_not_be_empty() -> None:
    with pytest.raises(PolicyError):
        engine_for(DEMO, key=b"")


def test_engines_with_the_same_key_agree() -> None:
    a = decide_eval_births().view
    b = engine_for(DEMO, KEY).decide("birth", 1, example("birth"), "county-general",
                                     "eval-births", ConsentView(), AT).view
    assert a == b
