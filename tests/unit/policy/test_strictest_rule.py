"""Strictest-rule decisions, one row per case with the expected outcome spelled out.

Each row names an agreement (built on the demo agencies and the shipped rule packs), the
consents on file, and what the subscriber must get: the outcome and, for the fields the
case is about, released / withheld / transformed:<transform>.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from policy_cases import AT, agreement, bundle_with, engine_for, example, grant, ms, revoke

from policy import ConsentView

HOSPITAL_BIRTHS = ["event_id", "subject_id", "mother.phone", "child.birth_weight_grams",
                   "mother.medicaid_covered_birth"]
SUD_ENROLLMENT = ["event_id", "subject_id", "participant.first_name", "diagnosis_codes",
                  "program_type"]
EI_EXIT = ["event_id", "participant.first_name", "has_iep", "exit_reason"]
HOTLINE = ["event_id", "reason", "allegation_summary", "reporter.name",
           "reporter.relationship"]
PART2_NOTICE = "cfr42.2-32-notice"
FERPA_NOTICE = "ferpa.99-33-notice"


@dataclass(frozen=True)
class Case:
    name: str
    agreement: dict[str, Any]
    event_type: str
    expect_outcome: str
    expect_fields: dict[str, str]
    consents: tuple[tuple[dict[str, Any], str, str | None], ...] = ()
    """(consent record, ingest time, recording agency or None for the source)."""
    at: int = AT
    obligations: tuple[str, ...] = ()
    reason_contains: dict[str, str] = field(default_factory=dict)


def hipaa(**extra: Any) -> dict[str, Any]:
    return agreement("cgh-hv", "county-general", "hv-nfp", "care_coordination", "birth",
                     HOSPITAL_BIRTHS, **extra)


def part2(**extra: Any) -> dict[str, Any]:
    return agreement("hrc-hv", "recovery-clinic", "hv-nfp", "care_coordination",
                     "enrollment", SUD_ENROLLMENT, **extra)


def on_file(*records: dict[str, Any], ingested: str = "2026-01-01", by: str | None = None
            ) -> tuple[tuple[dict[str, Any], str, str | None], ...]:
    """Consents on file, recorded by `by` (default: the agreement's source)."""
    return tuple((r, ingested, by) for r in records)


HEALTH = grant(categories=["health", "benefits"])
CASES = [
    # -- HIPAA: health data for care coordination only with consent ---------------------
    Case("hipaa: no consent, contact details yes, health facts no", hipaa(), "birth", "permit",
         {"subject_id": "released", "mother.phone": "released",
          "child.birth_weight_grams": "withheld", "mother.medicaid_covered_birth": "withheld"},
         reason_contains={"child.birth_weight_grams": "hipaa.care-coordination-authorization"}),
    Case("hipaa: consent naming the recipient releases health and benefits", hipaa(), "birth",
         "permit", {"child.birth_weight_grams": "released",
                    "mother.medicaid_covered_birth": "released"},
         consents=on_file(HEALTH)),
    Case("hipaa: a consent naming the recipient's kind is enough", hipaa(), "birth", "permit",
         {"child.birth_weight_grams": "released"},
         consents=on_file(grant(recipients=["kind:home_visiting"]))),
    Case("hipaa: consent for another purpose does not count", hipaa(), "birth", "permit",
         {"child.birth_weight_grams": "withheld"},
         consents=on_file(grant(purposes=["program_evaluation"]))),
    Case("hipaa: consent covers health only, benefits stay withheld", hipaa(), "birth",
         "permit", {"child.birth_weight_grams": "released",
                    "mother.medicaid_covered_birth": "withheld"},
         consents=on_file(grant(categories=["health"]))),
    Case("hipaa: consent naming another agency does not count", hipaa(), "birth", "permit",
         {"child.birth_weight_grams": "withheld"},
         consents=on_file(grant(recipients=["medicaid"]))),
    Case("hipaa: consent for another subject does not count", hipaa(), "birth", "permit",
         {"child.birth_weight_grams": "withheld"},
         consents=on_file(grant(subject="MPI-9999999"))),
    Case("hipaa: health never goes out for a birth match, even with consent",
         agreement("cgh-cw", "county-general", "cw-hotline", "birth_match", "birth",
                   HOSPITAL_BIRTHS),
         "birth", "permit", {"subject_id": "released", "child.birth_weight_grams": "withheld"},
         consents=on_file(grant(recipients=["cw-hotline"], purposes=["birth_match"])),
         reason_contains={"child.birth_weight_grams": "purpose birth_match not permitted"}),
    # -- 42 CFR Part 2: consent names the recipient or its class; redisclosure notice -----
    Case("part2: no consent, personal fields withheld", part2(), "enrollment", "permit",
         {"subject_id": "withheld", "participant.first_name": "withheld",
          "diagnosis_codes": "withheld", "program_type": "released"},
         reason_contains={"subject_id": "naming hv-nfp or kind:home_visiting for "
                                        "care_coordination covering sud, with "
                                        "recovery-clinic or kind:sud_treatment as discloser"}),
    Case("part2 (2024): a consent naming the recipient's class (kind:) is enough", part2(),
         "enrollment", "permit", {"subject_id": "released", "diagnosis_codes": "released"},
         consents=on_file(grant(recipients=["kind:home_visiting"])),
         obligations=(PART2_NOTICE,)),
    Case("part2: consent naming hv-nfp releases, with the redisclosure notice", part2(),
         "enrollment", "permit",
         {"subject_id": "released", "participant.first_name": "released",
          "diagnosis_codes": "released"},
         consents=on_file(grant()), obligations=(PART2_NOTICE,)),
    Case("part2: a consent covering sud releases who it is about, not the diagnosis",
         part2(), "enrollment", "permit",
         {"subject_id": "released", "participant.first_name": "released",
          "diagnosis_codes": "withheld"},
         consents=on_file(grant(categories=["sud"])), obligations=(PART2_NOTICE,)),
    Case("part2: a consent covering identifiers and health but not sud releases nothing "
         "personal", part2(), "enrollment", "permit",
         {"subject_id": "withheld", "participant.first_name": "withheld",
          "diagnosis_codes": "withheld", "program_type": "released"},
         consents=on_file(grant(categories=["identifier.direct", "health"]))),
    Case("part2 scope record: no consent, nothing at all", part2(scope="record"),
         "enrollment", "deny", {"program_type": "withheld", "event_id": "withheld"}),
    Case("part2 scope record: a consent for another recipient's class is not enough",
         part2(scope="record"), "enrollment", "deny", {"program_type": "withheld"},
         consents=on_file(grant(recipients=["kind:school"]))),
    Case("part2 scope record: named consent releases everything allowed, with notice",
         part2(scope="record"), "enrollment", "permit",
         {"event_id": "released", "program_type": "released", "subject_id": "released"},
         consents=on_file(grant()), obligations=(PART2_NOTICE,)),
    Case("part2: never for a criminal investigation, even with consent",
         agreement("hrc-cw", "recovery-clinic", "cw-hotline", "criminal_investigation",
                   "enrollment", SUD_ENROLLMENT),
         "enrollment", "permit", {"subject_id": "withheld", "program_type": "released"},
         consents=on_file(grant(recipients=["cw-hotline"],
                                purposes=["criminal_investigation"])),
         reason_contains={"subject_id": "denied by rule cfr42.no-criminal-use"}),
    # -- FERPA: parental consent, listed exceptions --------------------------------------
    Case("ferpa: no consent, education record fields withheld",
         agreement("b3-msd", "birth-to-three", "metro-schools", "education_transition",
                   "enrollment", EI_EXIT),
         "enrollment", "permit", {"participant.first_name": "withheld", "has_iep": "withheld",
                                  "exit_reason": "released"}),
    Case("ferpa: parent's consent for the district's kind releases, with 99.33 notice",
         agreement("b3-msd", "birth-to-three", "metro-schools", "education_transition",
                   "enrollment", EI_EXIT),
         "enrollment", "permit", {"participant.first_name": "released", "has_iep": "released"},
         consents=on_file(grant(recipients=["kind:school"],
                                purposes=["education_transition"])),
         obligations=(FERPA_NOTICE,)),
    Case("ferpa: evaluation exception, no consent, names only as pseudonyms",
         agreement("b3-eval", "birth-to-three", "state-evaluation", "program_evaluation",
                   "enrollment", EI_EXIT),
         "enrollment", "permit", {"participant.first_name": "transformed:pseudonymise",
                                  "has_iep": "released"},
         obligations=(FERPA_NOTICE,)),
    # -- CAPTA: reporter identity never; child welfare data for listed purposes ---------
    Case("capta: reporter identity withheld even when the agreement lists it",
         agreement("dcf-hv", "cw-hotline", "hv-nfp", "care_coordination", "referral", HOTLINE),
         "referral", "permit", {"reason": "released", "allegation_summary": "released",
                                "reporter.name": "withheld",
                                "reporter.relationship": "withheld"},
         reason_contains={"reporter.name": "denied by rule capta.reporter-identity"}),
    Case("capta: reporter identity withheld from any source, consent or not",
         agreement("hrc-hv-ref", "recovery-clinic", "hv-nfp", "care_coordination", "referral",
                   HOTLINE),
         "referral", "permit", {"reporter.name": "withheld", "reason": "released"},
         consents=on_file(grant()), obligations=(PART2_NOTICE,)),
    Case("capta: child welfare data not for an unlisted purpose",
         agreement("dcf-ma", "cw-hotline", "medicaid", "payment", "referral", HOTLINE),
         "referral", "permit", {"event_id": "released", "reason": "withheld",
                                "allegation_summary": "withheld"},
         reason_contains={"reason": "purpose payment not permitted by rule "
                                    "capta.child-welfare-purposes"}),
    # -- scope: record lifts consent and purpose restrictions ------------------------------
    Case("scope record: health consent lifted onto identifiers, none on file",
         hipaa(scope="record"), "birth", "deny",
         {"subject_id": "withheld", "mother.phone": "withheld"}),
    Case("scope record: the consent must cover every category any field of the record "
         "needs (here also sud, child_welfare, identifier.direct)",
         hipaa(scope="record"), "birth", "deny", {"subject_id": "withheld"},
         consents=on_file(HEALTH)),
    Case("scope record: with a consent covering all categories every allowed field goes",
         hipaa(scope="record"), "birth", "permit",
         {"subject_id": "released", "mother.phone": "released",
          "child.birth_weight_grams": "released"},
         consents=on_file(grant(categories=["*"]))),
    Case("scope record: a purpose restriction on one field withholds them all",
         agreement("dcf-ma", "cw-hotline", "medicaid", "payment", "referral",
                   ["event_id", "urgency", "reason"], scope="record"),
         "referral", "deny", {"urgency": "withheld", "event_id": "withheld"},
         reason_contains={"urgency": "scope: record"}),
    Case("scope field: the same restriction withholds only its own field",
         agreement("dcf-ma", "cw-hotline", "medicaid", "payment", "referral",
                   ["event_id", "urgency", "reason"]),
         "referral", "permit", {"urgency": "released", "reason": "withheld"}),
    # -- consent timing -------------------------------------------------------------------
    Case("consent not yet effective at the event's ingest time", hipaa(), "birth", "permit",
         {"child.birth_weight_grams": "withheld"},
         consents=on_file(grant(effective="2026-12-01"))),
    Case("consent expired before the event", hipaa(), "birth", "permit",
         {"child.birth_weight_grams": "withheld"},
         consents=on_file(grant(expires="2026-11-01"))),
    Case("consent expiring exactly at the decision time no longer counts", hipaa(), "birth",
         "permit", {"child.birth_weight_grams": "withheld"},
         consents=on_file(grant(expires="2026-11-07T14:20:00"))),
    Case("revocation ingested before the event", hipaa(), "birth", "permit",
         {"child.birth_weight_grams": "withheld"},
         consents=(*on_file(HEALTH), (revoke("C-1"), "2026-11-07T14:19:59", None))),
    Case("revocation ingested at the event's ingest time", hipaa(), "birth", "permit",
         {"child.birth_weight_grams": "withheld"},
         consents=(*on_file(HEALTH), (revoke("C-1"), "2026-11-07T14:20:00", None))),
    Case("revocation ingested after the event (processed later) does not apply", hipaa(),
         "birth", "permit", {"child.birth_weight_grams": "released"},
         consents=(*on_file(HEALTH), (revoke("C-1"), "2026-11-07T14:20:01", None))),
    Case("revoking another consent changes nothing", hipaa(), "birth", "permit",
         {"child.birth_weight_grams": "released"},
         consents=(*on_file(HEALTH), (revoke("C-other"), "2026-02-01", None))),
    # -- agreement timing -----------------------------------------------------------------
    Case("agreement not yet effective", hipaa(effective="2026-12-01"), "birth", "deny",
         {"subject_id": "withheld"}, reason_contains={"subject_id": "no agreement in force"}),
    Case("agreement on its last day (expiry is inclusive)", hipaa(expires="2026-11-07"),
         "birth", "permit", {"subject_id": "released"}, at=ms("2026-11-07T23:59:59")),
    Case("agreement expired the day before", hipaa(expires="2026-11-06"), "birth", "deny",
         {"subject_id": "withheld"}),
]


def view_for(case: Case) -> ConsentView:
    view = ConsentView()
    for record, ingested, by in case.consents:
        view.apply(record, ms(ingested), by or case.agreement["source"])
    return view


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_strictest_rule(case: Case) -> None:
    engine = engine_for(bundle_with([case.agreement]))
    decision = engine.decide(case.event_type, 1, example(case.event_type),
                             case.agreement["source"], case.agreement["id"], view_for(case),
                             case.at)
    assert decision.outcome == case.expect_outcome, decision.deny_reason
    for path, expected in case.expect_fields.items():
        entry = decision.field(path)
        got = entry.status if entry.status != "transformed" else f"transformed:{entry.transform}"
        assert got == expected, f"{path}: {entry.reason}"
    assert tuple(o.id for o in decision.obligations) == case.obligations
    for path, text in case.reason_contains.items():
        assert text in decision.field(path).reason
    if decision.outcome == "permit":
        assert decision.view is not None
        released = set(decision.released) | set(decision.transformed)
        assert released <= {f for f in case.agreement["fields"] if isinstance(f, str)}
    else:
        assert decision.view is None
        assert not decision.released and not decision.transformed


def test_consents_relied_on_are_named_in_the_decision() -> None:
    engine = engine_for(bundle_with([hipaa()]))
    view = ConsentView()
    view.apply(grant("C-other", recipients=["medicaid"]), ms("2026-01-01"), "county-general")
    view.apply(HEALTH, ms("2026-01-01"), "county-general")
    decision = engine.decide("birth", 1, example("birth"), "county-general", "cgh-hv", view, AT)
    assert decision.consent_ids == ("county-general/C-1",)


def test_renewed_agreement_takes_over_at_its_effective_date() -> None:
    first = hipaa(expires="2026-06-30")
    second = {**hipaa(effective="2026-07-01"), "id": "cgh-hv-2027"}
    subs = [{"id": "hv", "agency": "hv-nfp", "purpose": "care_coordination",
             "event_types": ["birth"]}]
    engine = engine_for(bundle_with([first, second], subs))
    record = example("birth")
    before = engine.decide("birth", 1, record, "county-general", "hv", ConsentView(),
                           ms("2026-06-30T12:00:00"))
    after = engine.decide("birth", 1, record, "county-general", "hv", ConsentView(), AT)
    assert (before.agreement_id, after.agreement_id) == ("cgh-hv", "cgh-hv-2027")
