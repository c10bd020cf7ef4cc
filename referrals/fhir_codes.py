"""Code systems and identifier systems of the referral FHIR mapping.

Task.status is FHIR's own (`referrals.lifecycle.FHIR_TASK_STATUS`). Business statuses and
reasons have no value set in the SDOH Clinical Care guide (it asks for `statusReason.text`
and leaves `businessStatus` open), so Handoff publishes its own code systems for them;
their codes are the event symbols in lower case with hyphens (`UNABLE_TO_REACH` ->
`unable-to-reach`).
"""

from __future__ import annotations

from collections.abc import Mapping

from referrals.lifecycle import BusinessStatus, Reason

BASE = "https://handoff.example.org/fhir"
BUSINESS_STATUS_SYSTEM = f"{BASE}/CodeSystem/referral-business-status"
REASON_SYSTEM = f"{BASE}/CodeSystem/referral-status-reason"
SERVICE_SYSTEM = f"{BASE}/CodeSystem/service-type"
REFERRAL_REASON_SYSTEM = f"{BASE}/CodeSystem/referral-reason"
AGENCY_SYSTEM = f"{BASE}/sid/agency"
PROGRAM_SYSTEM = f"{BASE}/sid/program"
SUBJECT_SYSTEM = f"{BASE}/sid/subject"
REFERRAL_SYSTEM = f"{BASE}/sid/referral"
"""Referral ids are unique per referring agency: the system is `REFERRAL_SYSTEM/<agency>`."""

TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
TASK_PROFILE = ("http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
                "SDOHCC-TaskForReferralManagement")
DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
SNOMED = "http://snomed.info/sct"
SDOHCC_CATEGORY_SYSTEMS = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes",
    "http://hl7.org/fhir/us/sdoh-cc/CodeSystem/sdohcc-temporary-codes",
)
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"

BUSINESS_DISPLAY: Mapping[BusinessStatus, str] = {
    BusinessStatus.CONTACT_ATTEMPTED: "Contact attempted",
    BusinessStatus.CONTACTED: "Family reached",
    BusinessStatus.WAITLISTED: "On a waiting list",
    BusinessStatus.ENROLLED: "Enrolled",
    BusinessStatus.UNABLE_TO_REACH: "Unable to reach",
}
REASON_DISPLAY: Mapping[Reason, str] = {
    Reason.NOT_ELIGIBLE: "Not eligible for the service",
    Reason.NO_CAPACITY: "No capacity",
    Reason.OUTSIDE_SERVICE_AREA: "Outside the service area",
    Reason.ALREADY_SERVED: "Already receiving the service",
    Reason.INCOMPLETE_REFERRAL: "Referral incomplete",
    Reason.UNABLE_TO_REACH: "Unable to reach the family",
    Reason.FAMILY_DECLINED: "The family declined",
    Reason.FAMILY_MOVED: "The family moved",
    Reason.REFERRAL_WITHDRAWN: "Withdrawn by the referring agency",
    Reason.DUPLICATE: "Duplicate referral",
    Reason.OTHER: "Other",
}

SERVICE_BY_SNOMED: Mapping[str, str] = {
    # The SDOHCC guide's own examples.
    "710925007": "CONCRETE_SUPPORTS",      # Provision of food (procedure)
    "467771000124109": "CONCRETE_SUPPORTS",  # Assistance with application for food pantry
}
CONCRETE_CATEGORIES = frozenset({
    "food-insecurity", "housing-instability", "homelessness", "inadequate-housing",
    "transportation-insecurity", "financial-insecurity", "material-hardship",
    "utility-insecurity", "medical-cost-burden", "health-insurance-coverage-status",
})
"""SDOHCC categories whose services are concrete supports (food, housing, money ...)."""


def code_of(symbol: str) -> str:
    """`UNABLE_TO_REACH` -> `unable-to-reach`."""
    return symbol.lower().replace("_", "-")


def symbol_of(code: str) -> str:
    """`unable-to-reach` -> `UNABLE_TO_REACH`."""
    return code.strip().upper().replace("-", "_").replace(" ", "_")
