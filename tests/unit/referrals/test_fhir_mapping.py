"""SDOHCC ServiceRequest + Task to referral events and back, tested on the examples the
SDOH Clinical Care guide publishes (fixtures/sdohcc, sources in SOURCES.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhir.resources.R4B.task import Task

from referrals.errors import ReferralError
from referrals.fhir_codes import AGENCY_SYSTEM, BUSINESS_STATUS_SYSTEM, REASON_SYSTEM
from referrals.fhir_in import (
    FhirReferralError,
    FhirReferralSource,
    referral_events,
    status_event,
)
from referrals.fhir_out import task_from_status, task_id
from referrals.lifecycle import STATUS_FROM_FHIR, Status
from schemas.jsonform import record_from_json, record_to_json
from tests.referral_cases import CATALOG

FIXTURES = Path(__file__).parent / "fixtures" / "sdohcc"
PLATFORM = "Organization/SDOHCC-OrganizationCoordinationPlatformExample"
CLINIC = "PractitionerRole/SDOHCC-PractitionerRoleDrJanWaterExample"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


PATIENT = load("Patient-pat-53234.json")
SOURCE = FhirReferralSource("clinic-fhir", "county-general",
                            agencies={PLATFORM: "hv-nfp", CLINIC: "county-general"})


def valid(event_type: str, record: dict) -> dict:
    """The record passes the event schema (as the publish path would check it)."""
    return record_from_json(CATALOG.get(event_type).schema, record)


def test_the_guide_s_food_pantry_referral_becomes_a_referral_event():
    (event,) = referral_events(
        [load("ServiceRequest-SDOHCC-ServiceRequestActiveFoodPantryApplicationAssistExample"
              ".json"),
         load("Task-SDOHCC-TaskReferralManagementOrderFulfillmentAcceptedExample.json"),
         PATIENT], SOURCE)
    valid("referral", event)
    assert event["referral_id"] == "SDOHCC-ServiceRequestActiveFoodPantryApplicationAssistExample"
    assert event["referred_to_service"] == "CONCRETE_SUPPORTS"
    assert event["referred_to_agency"] == "hv-nfp"
    assert event["occurred_at"] == "2020-09-11T21:56:54.671Z"  # from the Task
    assert event["subject_id"] == "1032702"
    # The current name and address (the earlier ones ended in 2020).
    assert event["caregiver"]["last_name"] == "BAXTER"
    assert event["caregiver"]["zip"] == "74048"
    assert event["status"] == "SENT"


def test_the_older_published_pair_maps_by_its_sdoh_category():
    request = load("ServiceRequest-SDOHCC-ServiceRequest-HungerVitalSign-Example-1.json")
    task = load("Task-SDOHCC-Task-OrderFulfillment-Example-1.json")
    # This early example has no authoredOn, requester or owner.
    with pytest.raises(FhirReferralError) as refused:
        referral_events([request, task, PATIENT], SOURCE)
    assert refused.value.problems == [
        ("ServiceRequest/SDOHCC-ServiceRequest-HungerVitalSign-Example-1", "authoredOn",
         "required (here or on the Task): when the referral was made")]
    (event,) = referral_events([{**request, "authoredOn": "2020-11-03"}, task, PATIENT],
                               FhirReferralSource("c", "county-general", receiver="hv-nfp"))
    valid("referral", event)
    assert (event["referred_to_service"], event["referred_to_agency"],
            event["occurred_at"]) == ("CONCRETE_SUPPORTS", "hv-nfp",
                                      "2020-11-03T00:00:00.000Z")


def test_a_task_whose_focus_is_missing_is_refused_naming_it():
    task = load("Task-SDOHCC-TaskReferralManagementOrderFulfillmentAcceptedExample.json")
    with pytest.raises(FhirReferralError, match="focus: must reference the ServiceRequest"):
        referral_events([task, PATIENT], SOURCE)


def test_posting_the_same_resources_twice_gives_the_same_event_ids():
    resources = [
        load("ServiceRequest-SDOHCC-ServiceRequestActiveFoodPantryApplicationAssistExample"
             ".json"),
        load("Task-SDOHCC-TaskReferralManagementOrderFulfillmentAcceptedExample.json"),
        PATIENT]
    assert referral_events(resources, SOURCE) == referral_events(resources, SOURCE)


@pytest.mark.parametrize(("fixture", "status"), [
    ("Task-SDOHCC-TaskReferralManagementOrderFulfillmentAcceptedExample.json", "ACCEPTED"),
    ("Task-SDOHCC-TaskReferralManagementOrderFulfillmentCompletedExample.json", "COMPLETED"),
])
def test_the_guide_s_task_updates_become_status_events(fixture, status):
    receiver = FhirReferralSource("nfp-fhir", "hv-nfp", agencies={CLINIC: "county-general"})
    event = status_event(load(fixture), receiver, [PATIENT])
    valid("referral_status", event)
    assert event["status"] == status
    assert event["referrer"] == "county-general" and event["recorded_by"] == "hv-nfp"
    assert event["referral_id"] == ("SDOHCC-ServiceRequestActiveFoodPantryApplicationAssist"
                                    "Example")
    assert event["subject_id"] == "1032702"


def test_a_task_update_with_business_status_and_reason():
    task = {
        "resourceType": "Task", "id": "t1", "status": "failed", "intent": "order",
        "focus": {"identifier": {"value": "HL-2026-118204"}},
        "for": {"identifier": {"value": "MPI-0048213"}},
        "requester": {"identifier": {"system": AGENCY_SYSTEM, "value": "cw-hotline"}},
        "lastModified": "2026-11-20T15:00:00-06:00",
        "businessStatus": {"coding": [{"system": BUSINESS_STATUS_SYSTEM,
                                       "code": "unable-to-reach"}]},
        "statusReason": {"text": "moved away, no forwarding number"},
    }
    event = status_event(task, FhirReferralSource("nfp", "hv-nfp"))
    valid("referral_status", event)
    assert (event["status"], event["business_status"], event["reason"],
            event["occurred_at"]) == ("FAILED", "UNABLE_TO_REACH", "OTHER",
                                      "2026-11-20T21:00:00.000Z")


@pytest.mark.parametrize("code", ["draft", "ready", "entered-in-error"])
def test_task_statuses_a_referral_never_has_are_refused(code):
    task = {**load("Task-SDOHCC-TaskReferralManagementOrderFulfillmentAcceptedExample.json"),
            "status": code}
    with pytest.raises(FhirReferralError, match="status: not a referral status"):
        status_event(task, FhirReferralSource("n", "hv-nfp", agencies={CLINIC: "x"}),
                     [PATIENT])


def test_a_task_update_that_names_no_referrer_is_refused():
    task = load("Task-SDOHCC-TaskReferralManagementOrderFulfillmentAcceptedExample.json")
    with pytest.raises(ReferralError) as refused:
        status_event(task, FhirReferralSource("n", "hv-nfp"), [PATIENT])
    assert "requester" in str(refused.value) and "COLIN" not in str(refused.value)


# -- out ---------------------------------------------------------------------------------

STATUS_RECORD = json.loads((Path(__file__).parents[3] / "schemas" / "events"
                            / "referral_status.example.json").read_text(encoding="utf-8"))


def test_a_status_becomes_a_valid_sdohcc_task():
    task = task_from_status(STATUS_RECORD, receiver="hv-nfp", referred_at_ms=1794218700000)
    Task.model_validate(task)
    assert task["status"] == "in-progress"
    assert task["id"] == task_id("cw-hotline", "HL-2026-118204")
    assert task["businessStatus"]["coding"][0] == {
        "system": BUSINESS_STATUS_SYSTEM, "code": "contacted", "display": "Family reached"}
    assert task["owner"]["identifier"]["value"] == "hv-nfp"
    assert task["authoredOn"] == "2026-11-09T10:05:00.000Z"


def test_withheld_fields_are_masked_where_the_profile_needs_them():
    filtered = {**STATUS_RECORD, "subject_id": None, "referral_id": None, "reason": None}
    task = task_from_status(filtered, receiver="hv-nfp")
    Task.model_validate(task)
    assert task["for"]["extension"][0]["valueCode"] == "masked"
    assert task["focus"]["extension"][0]["valueCode"] == "masked"
    assert "statusReason" not in task and "id" not in task


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.REQUESTED])
def test_a_status_goes_out_and_comes_back_the_same(status):
    record = {**STATUS_RECORD, "status": status.value, "business_status": None,
              "reason": "OTHER" if status in (Status.REJECTED, Status.FAILED) else None}
    task = task_from_status(record, receiver="hv-nfp")
    assert STATUS_FROM_FHIR[task["status"]] is status
    back = status_event(task, FhirReferralSource("x", "hv-nfp"))
    for name in ("status", "business_status", "referral_id", "referrer", "subject_id"):
        assert back[name] == record[name], name
    if record["reason"]:
        assert task["statusReason"]["coding"][0]["system"] == REASON_SYSTEM
        assert back["reason"] == "OTHER"
    assert record_to_json(CATALOG.get("referral_status").schema,
                          valid("referral_status", back))["status"] == status.value
