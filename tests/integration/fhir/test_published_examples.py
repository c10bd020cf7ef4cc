"""The bundles HL7 publishes, posted as a hospital would: the BFDR IG's live birth report
(mother as a Patient, BFDR's own shape) and a birth assembled from US Core's examples.
Their sources are named in tests/fixtures/fhir/README.md."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from connectors.fhir_mapping import MappingDefaults, map_bundle
from tests.integration.fhir.conftest import URL, auth, fixture, pull

PROVIDER = "bfdr/Bundle-bundle-provider-live-birth-babyg-quinn.json"
JURISDICTION = "bfdr/Bundle-bundle-jurisdiction-live-birth-babyg-quinn.json"
LOINC = "http://loinc.org"


def test_the_bfdr_live_birth_report_becomes_a_birth_that_home_visiting_receives(api):
    response = api.post(URL, json=fixture(PROVIDER), headers=auth("county-general"))
    assert response.status_code == 202, response.text
    (published,) = response.json()["events"]
    assert published["resource"] == "Encounter/encounter-birth-babyg-quinn"
    (delivered,) = pull(api, "hv-births", "hv-nfp")
    data = delivered["data"]
    assert (data["mother"]["first_name"], data["mother"]["last_name"]) == ("Jada", "Quinn")
    assert data["child"]["birth_date"] == "2019-02-12" and data["child"]["sex"] == "FEMALE"
    assert data["subject_id"] == "1032702" and data["child"]["child_id"] == "9932702"
    # A Utah mother does not take the connector's Wisconsin county: unknown stays null.
    assert data["county_fips"] is None
    assert "mother.ssn" in delivered["withheld"]
    assert "132225986" not in str(delivered)


@pytest.mark.parametrize("name", [PROVIDER, JURISDICTION])
def test_both_bfdr_reports_map_the_same_birth_from_their_fhir_elements(name):
    (mapped,) = map_bundle(fixture(name), MappingDefaults("cgh-fhir", None, "55025"))
    event = mapped.event
    assert event["subject_id"] == "1032702"              # the MRN, never the SSN beside it
    assert event["mother"]["ssn"] == "132225986"
    assert event["child"]["child_id"] == "9932702"
    assert event["occurred_at"] == "2019-02-12T13:00:00-07:00"
    assert event["mother"]["prenatal_visits"] == 8       # subject mother, focus the newborn
    assert event["mother"]["street_address"] == "1875 West Morton Avenue"  # home, not billing
    assert event["hospital_id"] == "116441967701"        # the birth Location's NPI
    assert event["child"]["birth_weight_grams"] == 2500
    assert event["child"]["gestational_age_weeks"] == 36
    # What the report does not say stays unknown:
    assert event["child"]["nicu_admission"] is None      # no NICU Observation
    assert event["county_fips"] is None                  # "Salt Lake", no county code
    assert event["mother"]["medicaid_covered_birth"] is False  # Coverage: private insurance


def test_the_county_comes_from_the_bfdr_address_when_it_carries_the_county_code():
    bundle = fixture(PROVIDER)
    mother = next(e["resource"] for e in bundle["entry"]
                  if e["resource"]["id"] == "patient-mother-jada-ann-quinn")
    mother["address"][0]["_district"] = {"extension": [{
        "url": "http://hl7.org/fhir/us/vr-common-library/StructureDefinition/DistrictCode",
        "valueString": "035"}]}
    (mapped,) = map_bundle(bundle, MappingDefaults("cgh-fhir", None, "55025"))
    assert mapped.event["county_fips"] == "49035"        # Salt Lake County, Utah


def test_medicaid_as_the_bfdr_principal_payer_says_the_birth_was_covered():
    bundle = fixture(PROVIDER)
    payer = next(e["resource"] for e in bundle["entry"]
                 if e["resource"]["resourceType"] == "Coverage")
    payer["type"]["coding"][0].update(code="2", display="MEDICAID")
    (mapped,) = map_bundle(bundle, MappingDefaults("cgh-fhir"))
    assert mapped.event["mother"]["medicaid_covered_birth"] is True
    payer["type"]["coding"][0].update(code="9999", display="Unavailable / Unknown")
    (mapped,) = map_bundle(bundle, MappingDefaults("cgh-fhir"))
    assert mapped.event["mother"]["medicaid_covered_birth"] is None


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"https://ehr.example/fhir/{resource['resourceType']}/"
                       f"{resource['id']}", "resource": resource}


def us_core_birth() -> dict[str, Any]:
    """US Core's published examples as they are (the mother Amy Baxter, her delivery
    Encounter and Coverage; an infant), joined by what a hospital adds for a birth: the
    infant's birth Encounter, part of the mother's delivery, and two Observations."""
    infant = fixture("us-core/Patient-infant-example.json")
    published = [fixture("us-core/Patient-example.json"), infant,
                 fixture("us-core/Encounter-delivery.json"),
                 fixture("us-core/Coverage-coverage-example.json")]
    newborn = {"reference": "Patient/infant-example"}

    def observation(obs_id: str, code: str, quantity: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": obs_id, "status": "final",
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "subject": newborn, "valueQuantity": quantity}

    added = [
        {"resourceType": "Encounter", "id": "birth", "status": "finished",
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                   "code": "IMP"},
         "subject": newborn, "period": {"start": "2020-06-02T04:12:00-05:00"},
         "partOf": {"reference": "Encounter/delivery"},
         "serviceProvider": {"identifier": {"system": "http://hl7.org/fhir/sid/us-npi",
                                            "value": "1467533928"}}},
        observation("weight", "8339-4", {"value": 3.4, "unit": "kg", "code": "kg",
                                         "system": "http://unitsofmeasure.org"}),
        observation("gestation", "11884-4", {"value": 274, "unit": "d", "code": "d",
                                             "system": "http://unitsofmeasure.org"}),
    ]
    return {"resourceType": "Bundle", "id": "us-core-birth", "type": "collection",
            "entry": [_entry(r) for r in published + added]}


def test_a_birth_from_us_core_examples_is_read_as_us_core_means_it(api):
    response = api.post(URL, json=us_core_birth(), headers=auth("county-general"))
    assert response.status_code == 202, response.text
    (delivered,) = pull(api, "hv-births", "hv-nfp")
    data = delivered["data"]
    # Her usual name, not the old one listed first; her current address, not the old one.
    assert (data["mother"]["first_name"], data["mother"]["last_name"]) == ("Amy", "Baxter")
    assert data["mother"]["street_address"] == "183 MOUNTAIN VIEW ST"
    assert data["subject_id"] == "1032702" and data["child"]["child_id"] == "1032703"
    assert data["child"]["sex"] == "MALE"               # US Core individual-sex
    assert data["county_fips"] is None                   # Oklahoma, not the WI default
    (mapped,) = map_bundle(us_core_birth(), MappingDefaults("cgh-fhir", None, "55025"))
    assert mapped.event["child"]["birth_weight_grams"] == 3400
    assert mapped.event["child"]["gestational_age_weeks"] == 39  # 274 days: 39 weeks
    assert mapped.event["mother"]["medicaid_covered_birth"] is False  # a PPO


def test_us_core_examples_without_a_birth_weight_are_refused_naming_the_observation(api):
    bundle = us_core_birth()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["id"] != "weight"]
    response = api.post(URL, json=copy.deepcopy(bundle), headers=auth("county-general"))
    assert response.status_code == 422
    assert [(e["resource"], e["element"]) for e in response.json()["errors"]] == [
        ("Patient/infant-example", "Observation (code http://loinc.org|8339-4)")]
