"""The return path and the overdue alerts as policy decisions: a referral status reaches
only its own referrer, and only the statuses the feedback terms list; an alert reaches
only the referral's two parties. One row per case, the expected outcome spelled out."""

from __future__ import annotations

from typing import Any

import pytest

from policy import ConsentView, PolicyEngine, ReasonCode
from tests.unit.policy.policy_cases import AT, CATALOG, DEMO, KEY, example

ENGINE = PolicyEngine(DEMO, CATALOG, pseudonym_key=KEY)


def decide(event_type: str, source: str, subscription: str, **fields: Any):
    record = {**example(event_type), **fields}
    return ENGINE.decide(event_type, CATALOG.get(event_type).version, record, source,
                         subscription, ConsentView(), AT)


@pytest.mark.parametrize(("fields", "outcome", "code"), [
    ({"status": "ACCEPTED", "business_status": None}, "permit", None),
    ({"status": "IN_PROGRESS", "business_status": "CONTACTED"}, "permit", None),
    ({"status": "IN_PROGRESS", "business_status": "UNABLE_TO_REACH"}, "permit", None),
    ({"status": "COMPLETED", "business_status": "ENROLLED"}, "permit", None),
    ({"status": "REJECTED", "business_status": None, "reason": "NO_CAPACITY"}, "permit",
     None),
    # Not listed in the demo's feedback terms: every unanswered call stays with NFP.
    ({"status": "IN_PROGRESS", "business_status": "CONTACT_ATTEMPTED"}, "deny",
     ReasonCode.FEEDBACK),
    ({"status": "ON_HOLD", "business_status": "WAITLISTED"}, "deny", ReasonCode.FEEDBACK),
    # Another agency's referral to NFP: the hotline is not a party to it.
    ({"status": "ACCEPTED", "business_status": None, "referrer": "recovery-clinic"}, "deny",
     ReasonCode.NOT_A_PARTY),
])
def test_statuses_flow_back_to_their_own_referrer_as_the_feedback_terms_say(
        fields, outcome, code) -> None:
    decision = decide("referral_status", "hv-nfp", "cw-referral-status", **fields)
    assert decision.outcome == outcome, decision.deny_reason
    assert decision.agreement_id == "nfp-hotline-referral-status"
    if code is not None:
        assert {f.code for f in decision.fields} == {code}
        assert decision.view is None


def test_a_refused_status_says_why_without_the_records_values() -> None:
    decision = decide("referral_status", "hv-nfp", "cw-referral-status",
                      status="IN_PROGRESS", business_status="CONTACT_ATTEMPTED")
    assert decision.deny_reason == ("the feedback terms of referral terms hotline-to-nfp "
                                    "(referrals.yaml) do not send IN_PROGRESS with "
                                    "CONTACT_ATTEMPTED back to the referrer")
    other = decide("referral_status", "hv-nfp", "cw-referral-status",
                   referrer="recovery-clinic")
    assert "MPI-" not in str(other.to_dict()) and "HL-" not in str(other.to_dict())
    assert other.deny_reason is not None and "not a party" in other.deny_reason


def test_a_permitted_status_carries_what_the_feedback_agreement_lists() -> None:
    decision = decide("referral_status", "hv-nfp", "cw-referral-status",
                      status="REJECTED", business_status=None, reason="NO_CAPACITY")
    assert decision.view is not None
    assert decision.view["status"] == "REJECTED"
    assert decision.view["reason"] == "NO_CAPACITY"
    assert decision.view["referral_id"] == "HL-2026-118204"


@pytest.mark.parametrize(("subscription", "fields", "outcome"), [
    ("cw-handoff-alerts", {}, "permit"),
    ("hv-handoff-alerts", {}, "permit"),
    ("cw-handoff-alerts", {"referrer": "recovery-clinic"}, "deny"),
    ("hv-handoff-alerts", {"receiver": "birth-to-three"}, "deny"),
    ("hv-handoff-alerts", {"referrer": "recovery-clinic"}, "permit"),
])
def test_overdue_alerts_reach_only_the_referrals_parties(subscription, fields,
                                                          outcome) -> None:
    decision = decide("handoff_overdue", "handoff", subscription, **fields)
    assert decision.outcome == outcome, decision.deny_reason
    if outcome == "deny":
        assert {f.code for f in decision.fields} == {ReasonCode.NOT_A_PARTY}


def test_without_a_feedback_agreement_no_status_flows_back() -> None:
    bundle_terms = {t.id: t for t in DEMO.referrals.values()}
    assert bundle_terms["hotline-to-nfp"].feedback is not None
    # A status from an agency the hotline has no agreement with is denied for lack of one.
    decision = decide("referral_status", "hv-nfp", "cw-referral-status",
                      status="ACCEPTED", business_status=None)
    assert decision.outcome == "permit"
    engine = PolicyEngine(_without_feedback_agreement(), CATALOG, pseudonym_key=KEY)
    record = {**example("referral_status"), "status": "ACCEPTED", "business_status": None}
    denied = engine.decide("referral_status", CATALOG.get("referral_status").version, record,
                           "hv-nfp", "cw-referral-status", ConsentView(), AT)
    assert denied.outcome == "deny"
    assert {f.code for f in denied.fields} == {ReasonCode.NO_AGREEMENT}


def _without_feedback_agreement():
    from dataclasses import replace

    agreements = {k: v for k, v in DEMO.agreements.items()
                  if k != "nfp-hotline-referral-status"}
    return replace(DEMO, agreements=agreements)
