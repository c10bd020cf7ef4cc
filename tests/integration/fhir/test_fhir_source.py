"""The FHIR R4 source over HTTP: bundles validated with fhir.resources, mapped to birth
events and published as the connector's agency; invalid ones refused naming the resource
and element."""

from __future__ import annotations

import copy

import pytest

from tests.integration.fhir.bundles import birth_bundle
from tests.integration.fhir.conftest import URL, auth, pull, pull_all, pull_nothing

# A broker runs in the test's process (seconds a file): the full suite, not the fast lane.
pytestmark = pytest.mark.slow


def test_a_birth_bundle_becomes_a_birth_event_that_home_visiting_receives(api):
    response = api.post(URL, json=birth_bundle(), headers=auth("county-general"))
    assert response.status_code == 202, response.text
    (published,) = response.json()["events"]
    assert published["event_type"] == "birth" and published["resource"] == "Encounter/enc-1"
    (delivered,) = pull(api, "hv-births", "hv-nfp")
    assert delivered["event_id"] == published["event_id"]
    assert delivered["source"] == "county-general"
    data = delivered["data"]
    assert data["mother"]["first_name"] == "Grace" and data["mother"]["phone"] == "608-555-0199"
    assert data["child"]["first_name"] == "Ada" and data["child"]["birth_date"] == "2026-11-06"
    assert data["mother"].get("ssn") is None and "mother.ssn" in delivered["withheld"]
    assert data["occurred_at"] == "2026-11-06T09:41:00.000Z"


def test_posting_the_same_bundle_again_publishes_nothing_twice(api):
    first = api.post(URL, json=birth_bundle(), headers=auth("county-general")).json()
    again = api.post(URL, json=birth_bundle(), headers=auth("county-general")).json()
    assert first["events"][0]["event_id"] == again["events"][0]["event_id"]
    assert again["events"][0]["duplicate"] is True


def test_invalid_fhir_is_refused_naming_resource_and_element_without_the_value(api):
    bundle = birth_bundle()
    bundle["entry"][0]["resource"]["birthDate"] = "2026-13-45"
    bundle["entry"][2]["resource"]["status"] = 17
    response = api.post(URL, json=bundle, headers=auth("county-general"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/invalid-fhir-bundle"
    where = {(e["resource"], e["element"]) for e in problem["errors"]}
    assert ("Patient/newborn-1", "birthDate") in where
    assert ("Encounter/enc-1", "status") in where
    assert "2026-13-45" not in response.text


def test_fhir_that_lacks_what_a_birth_needs_is_refused_and_nothing_is_published(api):
    bundle = birth_bundle()
    bundle["entry"] = [e for e in bundle["entry"]
                       if e["resource"]["resourceType"] != "RelatedPerson"]
    response = api.post(URL, json=bundle, headers=auth("county-general"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["resource"] == "Patient/newborn-1"
    missing_weight = copy.deepcopy(birth_bundle())
    missing_weight["entry"] = [e for e in missing_weight["entry"]
                               if e["resource"].get("id") != "bw-1"]
    response = api.post(URL, json=missing_weight, headers=auth("county-general"))
    assert response.status_code == 422
    # Named as the FHIR element to add, not as the event field it would fill.
    assert response.json()["errors"] == [{
        "resource": "Patient/newborn-1", "element": "Observation (code http://loinc.org|8339-4)",
        "message": "required: the birth weight, an Observation with this code whose subject "
                   "is the newborn (valueQuantity in g; a dataAbsentReason when it is unknown)"}]
    assert "child.birth_weight_grams" not in response.text
    assert pull_nothing(api, "hv-births", "hv-nfp")


def test_only_the_connectors_agency_may_post_and_only_to_a_fhir_connector(api):
    other = api.post(URL, json=birth_bundle(), headers=auth("vital-records"))
    assert other.status_code == 403
    unknown = api.post("/v1/connectors/fhir/nope/Bundle", json=birth_bundle(),
                       headers=auth("county-general"))
    assert unknown.status_code == 404
    not_fhir = api.post(URL, content=b"<Bundle/>", headers={
        **auth("county-general"), "Content-Type": "application/fhir+xml"})
    assert not_fhir.status_code == 415


SSN_SPELLINGS = [
    {"system": "urn:oid:2.16.840.1.113883.4.1", "value": "623417788"},
    {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                          "code": "SS"}]}, "value": "623417788"},
    {"system": "http://hl7.org/fhir/sid/us-ssn/", "value": "623417788"},
    {"system": "HTTP://HL7.ORG/FHIR/SID/US-SSN", "value": "623417788"},
]


def test_an_ssn_in_any_spelling_never_becomes_the_subject_id_of_a_delivered_event(api):
    for n, ssn in enumerate(SSN_SPELLINGS):
        bundle = birth_bundle(bundle_id=f"ssn-{n}",
                              mother_ids=[ssn, {"system": "https://state.example/mpi",
                                                "value": f"MPI-{n}"}])
        response = api.post(URL, json=bundle, headers=auth("county-general"))
        assert response.status_code == 202, response.text
    delivered = pull_all(api, "hv-births", "hv-nfp", len(SSN_SPELLINGS))
    assert len(delivered) == len(SSN_SPELLINGS)
    assert all("623417788" not in str(d) for d in delivered)
    assert all("mother.ssn" in d["withheld"] for d in delivered)


def test_a_bundle_whose_mother_is_identified_only_by_an_ssn_is_refused(api):
    for n, ssn in enumerate(SSN_SPELLINGS):
        response = api.post(URL, json=birth_bundle(bundle_id=f"only-ssn-{n}",
                                                   mother_ids=[ssn]),
                            headers=auth("county-general"))
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert (error["resource"], error["element"]) == ("RelatedPerson/mother-1", "identifier")
        assert "Social Security number" in error["message"]
        assert "623417788" not in response.text
    assert pull_nothing(api, "hv-births", "hv-nfp")


def test_a_bundle_of_too_many_entries_is_refused_before_its_entries_are_read(api):
    bundle = birth_bundle()
    bundle["entry"] += [{}] * 1000      # the default fhir.max_bundle_entries is 1,000
    response = api.post(URL, json=bundle, headers=auth("county-general"))
    assert response.status_code == 413
    problem = response.json()
    assert problem["limit"] == 1000 and "fhir.max_bundle_entries" in problem["detail"]
    assert "1008 entries" in problem["detail"]
    assert pull_nothing(api, "hv-births", "hv-nfp")


@pytest.mark.parametrize("api", [{"fhir": {"max_bundle_entries": 8}}], indirect=True)
def test_the_entry_cap_is_a_setting(api):
    assert api.post(URL, json=birth_bundle(), headers=auth("county-general")).status_code \
        == 202
    bundle = birth_bundle(bundle_id="nine")
    bundle["entry"].append({})
    response = api.post(URL, json=bundle, headers=auth("county-general"))
    assert response.status_code == 413 and response.json()["limit"] == 8


def test_a_body_over_the_cap_is_refused_before_it_is_read_whole(api):
    too_big = b'{"resourceType": "Bundle", "type": "collection", "entry": [' \
        + b"{}," * 400_000 + b"{}]}"
    response = api.post(URL, content=too_big, headers=auth("county-general"))
    assert response.status_code == 413
    assert "limit of 1048576 bytes" in response.json()["detail"]


def test_json_nested_too_deep_to_read_is_a_problem_not_a_crash(api):
    response = api.post(URL, content=b"[" * 200_000, headers=auth("county-general"))
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"resource": "Bundle", "element": "<body>", "message": "not JSON"}]
