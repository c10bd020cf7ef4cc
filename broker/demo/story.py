"""The demo's morning: what the agencies in `examples/demo/policy` publish, in order,
and what happens later (`LATER`): a referral nobody acted on is flagged overdue.

Names, numbers and identifiers are invented. Times are relative to when the demo runs,
so agreements and consents are in force.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

Event = dict[str, Any]


@dataclass(frozen=True)
class Step:
    agency: str
    event_type: str
    narration: str
    build: Callable[[datetime], Event]
    refused: bool = False
    """The broker must refuse this event (the demo shows an attempt that fails)."""


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _day(t: datetime, days_ago: int = 0) -> str:
    return (t.date() - timedelta(days=days_ago)).isoformat()


def _envelope(t: datetime, subject: str) -> Event:
    return {"event_id": str(uuid.uuid4()), "occurred_at": _iso(t), "subject_id": subject}


def birth(subject: str, child_id: str, child_first: str, last: str, mother_first: str,
          mother_dob: str, exposure: str, weight: int, weeks: int, nicu: bool,
          safe_care: bool | None, mat: bool | None, zip_code: str, phone: str,
          ssn: str, medicaid_id: str | None, street: str = "418 Larkspur Ct",
          child_sex: str = "FEMALE") -> Callable[[datetime], Event]:
    def build(t: datetime) -> Event:
        return {
            **_envelope(t, subject),
            "child": {"child_id": child_id, "first_name": child_first, "last_name": last,
                      "birth_date": _day(t, 1), "sex": child_sex, "birth_weight_grams": weight,
                      "gestational_age_weeks": weeks, "nicu_admission": nicu,
                      "substance_exposure": exposure, "plan_of_safe_care": safe_care},
            "mother": {"first_name": mother_first, "last_name": last, "ssn": ssn,
                       "birth_date": mother_dob, "street_address": street,
                       "zip": zip_code, "phone": phone, "race_ethnicity": None,
                       "medicaid_id": medicaid_id,
                       "medicaid_covered_birth": medicaid_id is not None,
                       "prenatal_visits": 7, "receiving_mat": mat},
            "hospital_id": "1467533928",
            "county_fips": "55025",
        }
    return build


def consent(subject: str, consent_id: str, action: str, grantor: str, recipients: list[str],
            purposes: list[str], categories: list[str], disclosers: list[str] | None = None,
            ) -> Callable[[datetime], Event]:
    """A consent event; the agency publishing it records it. No disclosers: the
    recording agency's own data."""
    def build(t: datetime) -> Event:
        return {
            **_envelope(t, subject),
            "consent_id": consent_id, "action": action,
            "grantor": {"name": grantor, "relationship": "SELF"},
            "recipients": recipients, "purposes": purposes, "categories": categories,
            "effective_at": _iso(t - timedelta(minutes=1)),
            "expires_at": _iso(t + timedelta(days=365)),
            "form_reference": f"DMS-{consent_id}",
            "disclosers": disclosers or [],
        }
    return build


KEISHA_REPORT = ("Caller worried the mother is overwhelmed with a premature newborn; no "
                 "safety threat identified.")


def referral(subject: str, referral_id: str, first: str, last: str, child_first: str,
             reason: str = "SCREENED_OUT_REPORT", allegation: str = KEISHA_REPORT,
             child_days: int = 20, phone: str = "608-555-0117",
             street: str = "77 Willow Bend", zip_code: str = "53713"
             ) -> Callable[[datetime], Event]:
    def build(t: datetime) -> Event:
        return {
            **_envelope(t, subject),
            "referral_id": referral_id, "referred_to_service": "HOME_VISITING",
            "referred_to_agency": "hv-nfp", "referred_to_program": "nfp-dane-county",
            "reason": reason, "screening_decision": "SCREENED_OUT",
            "allegation_summary": allegation, "urgency": "PRIORITY", "status": "SENT",
            "caregiver": {"first_name": first, "last_name": last, "phone": phone,
                          "street_address": street, "zip": zip_code,
                          "preferred_language": "en"},
            "child": {"first_name": child_first, "birth_date": _day(t, child_days)},
            "reporter": {"name": "Dana Whitcomb, RN", "relationship": "mandated reporter "
                         "(medical)", "phone": "608-555-0199"},
        }
    return build


def status(subject: str, referral_id: str, new: str, business: str | None = None,
           reason: str | None = None) -> Callable[[datetime], Event]:
    """A status of one of the hotline's referrals, recorded by home visiting."""
    def build(t: datetime) -> Event:
        return {
            **_envelope(t, subject),
            "referral_id": referral_id, "referrer": "cw-hotline", "recorded_by": "hv-nfp",
            "program_id": "nfp-dane-county", "status": new, "business_status": business,
            "reason": reason,
        }
    return build


def enrollment(subject: str, enrollment_id: str, program_id: str, program_type: str,
               first: str, last: str, referral_id: str | None = None,
               diagnosis_codes: list[str] | None = None, action: str = "ENROLLED",
               exit_reason: str | None = None, medicaid_id: str | None = None,
               referred_by: str | None = None) -> Callable[[datetime], Event]:
    def build(t: datetime) -> Event:
        return {
            **_envelope(t, subject),
            "enrollment_id": enrollment_id, "action": action, "program_id": program_id,
            "program_type": program_type, "referral_id": referral_id,
            "referred_by": referred_by,
            "effective_date": _day(t), "exit_reason": exit_reason,
            "participant": {"first_name": first, "last_name": last,
                            "birth_date": "1995-05-16", "zip": "53703"},
            "medicaid_id": medicaid_id, "diagnosis_codes": diagnosis_codes or [],
            "grade_level": None, "has_iep": None,
        }
    return build


def watch_list_entry(subject: str, entry_id: str, reason: str, first: str, last: str,
                     dob: str, street: str, zip_code: str, phone: str
                     ) -> Callable[[datetime], Event]:
    """An entry of child welfare's restricted birth match list (goes nowhere else)."""
    def build(t: datetime) -> Event:
        return {
            **_envelope(t, subject),
            "entry_id": entry_id, "action": "ADD", "reason": reason,
            "parent": {"first_name": first, "last_name": last, "birth_date": dob,
                       "sex": "FEMALE", "street_address": street, "zip": zip_code,
                       "phone": phone},
            "clk": None,
        }
    return build


JOLENE = "MPI-0048213"
MARIA = "MPI-0051190"
KEISHA = "MPI-0050377"
ANA = "MPI-0049902"
KEISHA_VR = "VR-2026-MO-4417"
MARIA_VR = "VR-2026-MO-4418"
"""Vital records numbers mothers by its own registration file, not the state MPI."""
KEISHA_REFERRAL = "HL-2026-118204"
JOLENE_REFERRAL = "HL-2026-118377"

STORY: tuple[Step, ...] = (
    Step("county-general", "consent",
         "At County General, Jolene Lindqvist signs consent for the hospital to share her "
         "and her newborn's health information with the Nurse-Family Partnership.",
         consent(JOLENE, "CONSENT-HV-0311", "GRANT", "Jolene Lindqvist", ["hv-nfp"],
                 ["care_coordination"], ["health", "benefits", "sud"])),
    Step("county-general", "birth",
         "Jolene's daughter Amara is born at 36 weeks, opioid-exposed, admitted to the NICU "
         "with a Plan of Safe Care.",
         birth(JOLENE, "MPI-0091774", "Amara", "Lindqvist", "Jolene", "1995-05-16",
               "OPIOIDS", 2410, 36, True, True, True, "53703", "608-555-0142",
               "512-44-9031", "WI-MA-77120934")),
    Step("county-general", "birth",
         "Maria Delgado gives birth to a healthy full-term girl. She has not signed a "
         "consent.",
         birth(MARIA, "MPI-0091802", "Lucia", "Delgado", "Maria", "1999-02-03", "NONE",
               3350, 39, False, None, None, "53704", "608-555-0163", "398-20-4417",
               "WI-MA-77411020")),
    Step("cw-hotline", "referral",
         "The child-welfare hotline screens out a call about Keisha Brown's family and "
         "refers them to home visiting instead.",
         referral(KEISHA, KEISHA_REFERRAL, "Keisha", "Brown", "Jaylen")),
    Step("recovery-clinic", "enrollment",
         "Ana Reyes, a young mother, enrolls in treatment at Harbor Recovery Center, a "
         "42 CFR Part 2 program. She has not consented to any disclosure.",
         enrollment(ANA, "HRC-4410", "harbor-recovery-mat", "SUD_TREATMENT", "Ana", "Reyes",
                    diagnosis_codes=["F11.20"])),
    Step("hv-nfp", "consent",
         "The Nurse-Family Partnership tries to record a consent for Ana itself, naming "
         "Harbor Recovery as the discloser. Only Harbor Recovery records consents for its "
         "own records: the broker refuses, and audits the attempt.",
         consent(ANA, "CONSENT-HV-SELF", "GRANT", "Ana Reyes", ["hv-nfp"],
                 ["care_coordination"], ["*"], disclosers=["recovery-clinic"]),
         refused=True),
    Step("recovery-clinic", "consent",
         "At Harbor Recovery, Ana signs a Part 2 consent naming the Nurse-Family "
         "Partnership, for care coordination. The clinic records it.",
         consent(ANA, "CONSENT-P2-0042", "GRANT", "Ana Reyes", ["hv-nfp"],
                 ["care_coordination"], ["*"])),
    Step("recovery-clinic", "enrollment",
         "Harbor Recovery records Ana's move to outpatient treatment. Her home visitor "
         "now learns who the record is about.",
         enrollment(ANA, "HRC-4411", "harbor-recovery-iop", "SUD_TREATMENT", "Ana", "Reyes",
                    diagnosis_codes=["F11.20"])),
    Step("cw-hotline", "referral",
         "County General notifies the hotline that Amara was born exposed to opioids. "
         "Jolene is in treatment and has a Plan of Safe Care: the hotline screens the "
         "notification out and refers the family to home visiting.",
         referral(JOLENE, JOLENE_REFERRAL, "Jolene", "Lindqvist", "Amara",
                  reason="SUBSTANCE_EXPOSED_INFANT",
                  allegation="Infant exposed to opioids at birth; mother in "
                             "medication-assisted treatment; Plan of Safe Care in place.",
                  child_days=1, phone="608-555-0142", street="418 Larkspur Ct",
                  zip_code="53703")),
    Step("hv-nfp", "referral_status",
         "The Nurse-Family Partnership accepts the hotline's referral. The hotline hears "
         "back, under NFP's feedback agreement, within a second.",
         status(JOLENE, JOLENE_REFERRAL, "ACCEPTED")),
    Step("hv-nfp", "referral_status",
         "A nurse calls Jolene; nobody answers. The feedback terms send contacts made, "
         "not every attempt: the hotline is not told.",
         status(JOLENE, JOLENE_REFERRAL, "IN_PROGRESS", "CONTACT_ATTEMPTED")),
    Step("hv-nfp", "referral_status",
         "The nurse reaches Jolene the next time. The hotline learns she was reached, and "
         "when; nothing of what NFP holds about her treatment.",
         status(JOLENE, JOLENE_REFERRAL, "IN_PROGRESS", "CONTACTED")),
    Step("hv-nfp", "enrollment",
         "Jolene enrolls in the Nurse-Family Partnership. The enrollment names the "
         "hotline's referral, so the referral counts as enrolled.",
         enrollment(JOLENE, "NFP-DANE-20931", "nfp-dane-county", "HOME_VISITING", "Jolene",
                    "Lindqvist", referral_id=JOLENE_REFERRAL, referred_by="cw-hotline",
                    medicaid_id="WI-MA-77120934")),
    Step("hv-nfp", "referral_status",
         "NFP closes the referral as fulfilled: the family enrolled. The loop is closed; "
         "the hotline's copy says enrolled and when, and no substance-use fact.",
         status(JOLENE, JOLENE_REFERRAL, "COMPLETED", "ENROLLED")),
    Step("county-general", "consent",
         "Jolene revokes her consent.",
         consent(JOLENE, "CONSENT-HV-0311", "REVOKE", "Jolene Lindqvist", [], [], [])),
    Step("county-general", "birth",
         "County General sends a corrected birth record for Amara (birth weight re-measured).",
         birth(JOLENE, "MPI-0091774", "Amara", "Lindqvist", "Jolene", "1995-05-16",
               "OPIOIDS", 2395, 36, True, True, True, "53703", "608-555-0142",
               "512-44-9031", "WI-MA-77120934")),
    Step("recovery-clinic", "consent",
         "Ana withdraws her Part 2 consent at Harbor Recovery.",
         consent(ANA, "CONSENT-P2-0042", "REVOKE", "Ana Reyes", [], [], [])),
    Step("recovery-clinic", "enrollment",
         "Harbor Recovery records that Ana completed treatment. Her consent is no longer "
         "in force: the home visitor receives nothing of it.",
         enrollment(ANA, "HRC-4412", "harbor-recovery-iop", "SUD_TREATMENT", "Ana", "Reyes",
                    diagnosis_codes=["F11.20"], action="EXITED", exit_reason="COMPLETED")),
    Step("cw-hotline", "watch_list_entry",
         "Child welfare keeps a restricted list of parents with a prior termination of "
         "parental rights or an open case, for birth match. Keisha Brown has an open case; "
         "her entry goes to the broker's birth match and to no one else.",
         watch_list_entry(KEISHA, "CPS-CASE-2025-3318", "OPEN_CASE", "Keisha", "Brown",
                          "1998-09-12", "77 Willow Bend", "53713", "608-555-0117")),
    Step("vital-records", "birth",
         "Vital records registers the birth of Keisha Brown's son. Birth match finds her on "
         "child welfare's list, so a worker can offer the family support early.",
         birth(KEISHA_VR, "VR-2026-CH-7731", "Malik", "Brown", "Keisha", "1998-09-12",
               "UNKNOWN", 3180, 39, False, None, None, "53713", "608-555-0117",
               "471-22-0934", None, street="77 Willow Bend", child_sex="MALE")),
    Step("vital-records", "birth",
         "Vital records registers the birth of Maria Delgado's daughter. Maria is on no "
         "list: child welfare must learn nothing of it.",
         birth(MARIA_VR, "VR-2026-CH-7732", "Lucia", "Delgado", "Maria", "1999-02-03",
               "UNKNOWN", 3350, 39, False, None, None, "53704", "608-555-0163",
               "398-20-4417", None)),
)


@dataclass(frozen=True)
class TimePasses:
    """The demo's clock moves ahead (the referral timers run on it), and the alerts it
    brings are shown."""

    days: int
    narration: str
    alerts: int
    """How many `handoff_overdue` alerts the hotline should receive."""


LATER: tuple[Step | TimePasses, ...] = (
    TimePasses(10, "Nobody at NFP picks up Keisha's referral. The demo's clock jumps 10 "
                   "days ahead: the referral's service levels (received within 1 business "
                   "day, first contact within 3) pass, and the broker flags the dropped "
                   "handoff to both agencies.", alerts=2),
    Step("hv-nfp", "referral_status",
         "NFP finally answers Keisha's referral: no capacity. The hotline hears it (with "
         "the reason, which this feedback agreement shares), and the alerts are cleared.",
         status(KEISHA, KEISHA_REFERRAL, "REJECTED", reason="NO_CAPACITY")),
    TimePasses(0, "The late answer clears both alerts.", alerts=2),
)
"""After the morning, in the demo only: a dropped handoff is flagged, then cleared."""
