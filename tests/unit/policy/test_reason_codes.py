"""Every field decision carries a reason code from a closed set, the label metrics use:
one row per case, the expected code spelled out."""

from __future__ import annotations

import pytest

from policy import ConsentView, PolicyEngine, ReasonCode
from tests.unit.policy.policy_cases import (
    AT,
    CATALOG,
    DEMO,
    KEY,
    agreement,
    bundle_with,
    engine_for,
    example,
    grant,
)

ENGINE = PolicyEngine(DEMO, CATALOG, pseudonym_key=KEY)


def decide(event_type: str, source: str, subscription: str, view: ConsentView | None = None,
           at: int = AT):
    record = example(event_type)
    return ENGINE.decide(event_type, CATALOG.get(event_type).version, record, source,
                         subscription, view or ConsentView(), at)


@pytest.mark.parametrize(("subscription", "path", "status", "code"), [
    ("hv-births", "subject_id", "released", ReasonCode.RELEASED),
    ("hv-births", "mother.ssn", "withheld", ReasonCode.NOT_IN_AGREEMENT),
    ("hv-births", "child.birth_weight_grams", "withheld", ReasonCode.CONSENT),
    ("eval-births", "child.birth_date", "transformed", ReasonCode.TRANSFORMED),
    ("eval-births", "mother.first_name", "withheld", ReasonCode.NOT_IN_AGREEMENT),
])
def test_birth_fields_carry_their_code(subscription, path, status, code) -> None:
    entry = decide("birth", "county-general", subscription).field(path)
    assert (entry.status, entry.code) == (status, code)


def test_a_consent_in_force_turns_a_consent_code_into_a_release() -> None:
    view = ConsentView()
    view.apply(grant(), AT - 1000, "county-general")
    entry = decide("birth", "county-general", "hv-births", view).field(
        "child.birth_weight_grams")
    assert (entry.status, entry.code) == ("released", ReasonCode.RELEASED)


@pytest.mark.parametrize(("recorded_by", "disclosers"), [
    # Recorded by an agency county-general does not rely on (agencies.yaml relies_on).
    ("recovery-clinic", ["county-general"]),
    # Recorded by the source itself, but naming another holder as discloser.
    ("county-general", ["hv-nfp"]),
])
def test_a_consent_from_the_wrong_recorder_or_for_the_wrong_discloser_is_a_consent_code(
        recorded_by: str, disclosers: list[str]) -> None:
    view = ConsentView()
    view.apply(grant(disclosers=disclosers), AT - 1000, recorded_by)
    entry = decide("birth", "county-general", "hv-births", view).field(
        "child.birth_weight_grams")
    assert (entry.status, entry.code) == ("withheld", ReasonCode.CONSENT)
    assert entry.reason.endswith("with county-general or kind:hospital as discloser")


def test_a_part2_record_consent_a_recipient_granted_itself_denies_for_consent() -> None:
    view = ConsentView()
    view.apply(grant(recipients=["hv-nfp"], disclosers=["recovery-clinic"]), AT - 1000,
               "hv-nfp")
    decision = decide("enrollment", "recovery-clinic", "hv-sud-enrollments", view)
    assert decision.outcome == "deny"
    entry = decision.field("participant.first_name")
    assert (entry.status, entry.code) == ("withheld", ReasonCode.CONSENT)
    assert entry.reason.endswith("with recovery-clinic or kind:sud_treatment as discloser")


def test_an_agreement_that_requires_consent_withholds_every_field_for_consent() -> None:
    # The reason names the agreement ("agreement nfp-eval-enrollments requires consent"),
    # which is why metrics must not be derived from the text.
    decision = decide("enrollment", "hv-nfp", "eval-enrollments")
    assert decision.outcome == "deny"
    assert "agreement" in (decision.deny_reason or "")
    assert {f.code for f in decision.fields} == {ReasonCode.CONSENT}


@pytest.mark.parametrize(("source", "subscription", "at", "code"), [
    ("vital-records", "hv-births", AT, ReasonCode.NOT_SUBSCRIBED),
    ("county-general", "hv-births", AT - 10 * 365 * 86_400_000, ReasonCode.NO_AGREEMENT),
])
def test_deny_all_decisions_say_why_by_code(source, subscription, at, code) -> None:
    decision = decide("birth", source, subscription, at=at)
    assert decision.outcome == "deny"
    assert {f.code for f in decision.fields} == {code}


HOTLINE = ["event_id", "reason", "reporter.name"]


@pytest.mark.parametrize(("terms", "event_type", "path", "code"), [
    (agreement("dcf-hv", "cw-hotline", "hv-nfp", "care_coordination", "referral", HOTLINE),
     "referral", "reporter.name", ReasonCode.DENIED),
    (agreement("dcf-ma", "cw-hotline", "medicaid", "payment", "referral", HOTLINE),
     "referral", "reason", ReasonCode.PURPOSE),
    (agreement("dcf-ma", "cw-hotline", "medicaid", "payment", "referral", HOTLINE,
               scope="record"), "referral", "event_id", ReasonCode.PURPOSE),
    (agreement("cgh-hv", "county-general", "hv-nfp", "care_coordination", "birth",
               ["event_id", {"mother.phone": "drop"}]), "birth", "mother.phone",
     ReasonCode.DROPPED),
])
def test_rule_outcomes_carry_their_code(terms, event_type, path, code) -> None:
    engine = engine_for(bundle_with([terms]))
    decision = engine.decide(event_type, 1, example(event_type), terms["source"],
                             terms["id"], ConsentView(), AT)
    entry = decision.field(path)
    assert (entry.status, entry.code) == ("withheld", code), entry.reason


def test_codes_are_the_short_metric_labels() -> None:
    assert {c.value for c in ReasonCode} == {
        "released", "transformed", "agreement", "denied", "purpose", "drop", "consent",
        "no_agreement", "not_subscribed", "unknown_source", "not_a_party", "feedback"}
