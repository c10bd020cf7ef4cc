"""FHIR births to birth events: who the mother is in each shape HL7 writes, what is
refused in FHIR terms, and that nothing is invented (unknown stays null)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from connectors.fhir_bundle import BundleTooLarge, check_entry_count
from connectors.fhir_mapping import FhirMappingError, MappingDefaults, map_bundle
from tests.integration.fhir.bundles import LOINC, birth_bundle

SNOMED = "http://snomed.info/sct"
SOPT = "https://nahdo.org/sopt"


def resource(bundle: dict[str, Any], resource_id: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == resource_id)


def drop(bundle: dict[str, Any], *ids: str) -> dict[str, Any]:
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["id"] not in ids]
    return bundle


def add(bundle: dict[str, Any], res: dict[str, Any]) -> dict[str, Any]:
    bundle["entry"].append({"fullUrl": f"urn:uuid:{res['id']}", "resource": res})
    return bundle


def birth(bundle: dict[str, Any], county: str | None = "55025") -> dict[str, Any]:
    (event,) = map_bundle(bundle, MappingDefaults("cgh-fhir", "1467533928", county))
    assert event.event_type == "birth"
    return event.event


def refused(bundle: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(FhirMappingError) as caught:
        map_bundle(bundle, MappingDefaults("cgh-fhir", "1467533928", "55025"))
    return caught.value.problems


def us_core_shape() -> dict[str, Any]:
    """The mother's own Patient record, linked to her RelatedPerson of the newborn."""
    bundle = birth_bundle()
    related = resource(bundle, "mother-1")
    related["identifier"] = []
    return add(bundle, {
        "resourceType": "Patient", "id": "mother-patient",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.4.1", "value": "623417788"},
                       {"system": "https://state.example/mpi", "value": "MPI-77"}],
        "name": [{"use": "maiden", "family": "Eze", "given": ["Grace"]},
                 {"use": "official", "family": "Okafor", "given": ["Grace"]}],
        "birthDate": "1997-03-12",
        "link": [{"other": {"reference": "RelatedPerson/mother-1"}, "type": "seealso"}]})


def test_a_mother_as_her_own_patient_linked_to_the_related_person_is_read_from_it():
    event = birth(us_core_shape())
    assert event["subject_id"] == "MPI-77"
    assert event["mother"]["ssn"] == "623417788"
    assert (event["mother"]["first_name"], event["mother"]["last_name"]) == ("Grace", "Okafor")
    assert event["mother"]["phone"] == "608-555-0199"   # filled from the RelatedPerson


def test_a_mother_as_the_subject_of_the_maternity_encounter_is_found_without_related_person():
    bundle = drop(birth_bundle(), "mother-1")
    add(bundle, {"resourceType": "Patient", "id": "jada",
                 "identifier": [{"system": "https://hospital.example/mrn", "value": "M-1"}],
                 "name": [{"family": "Quinn", "given": ["Jada"]}], "birthDate": "1985-01-15",
                 "address": [{"use": "billing", "state": "WI", "district": "55079"},
                             {"use": "home", "state": "WI", "district": "55025"}]})
    add(bundle, {"resourceType": "Encounter", "id": "maternity", "status": "finished",
                 "class": {"code": "IMP"}, "subject": {"reference": "Patient/jada"}})
    resource(bundle, "enc-1")["partOf"] = {"reference": "Encounter/maternity"}
    event = birth(bundle)
    assert event["subject_id"] == "M-1" and event["mother"]["first_name"] == "Jada"
    assert event["county_fips"] == "55025"    # the home address, not the billing one


def test_a_mother_whose_only_identifier_is_an_ssn_is_refused_naming_the_element():
    ids = [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                 "code": "SS"}]},
            "system": "URN:OID:2.16.840.1.113883.4.1/", "value": "623417788"}]
    problems = refused(birth_bundle(mother_ids=ids))
    assert [(r, e) for r, e, _ in problems] == [("RelatedPerson/mother-1", "identifier")]
    assert "Social Security" in problems[0][2] and "623417788" not in str(problems)


def test_an_ssn_listed_first_is_never_the_subject_id():
    ids = [{"system": "urn:oid:2.16.840.1.113883.4.1", "value": "623417788"},
           {"system": "https://state.example/mpi", "value": "MPI-5"}]
    event = birth(birth_bundle(mother_ids=ids))
    assert event["subject_id"] == "MPI-5" and event["mother"]["ssn"] == "623417788"


def test_a_newborn_identified_only_by_an_ssn_is_refused():
    bundle = birth_bundle()
    resource(bundle, "newborn-1")["identifier"] = [
        {"system": "http://hl7.org/fhir/sid/us-ssn/", "value": "700-11-2222"}]
    assert [(r, e) for r, e, _ in refused(bundle)] == [("Patient/newborn-1", "identifier")]


def test_a_mother_from_another_state_does_not_take_the_connectors_county():
    bundle = birth_bundle()
    resource(bundle, "mother-1")["address"] = [{"line": ["1 Main St"], "state": "IL",
                                                "postalCode": "61101"}]
    assert birth(bundle)["county_fips"] is None
    resource(bundle, "mother-1")["address"][0]["state"] = "WI"
    assert birth(bundle)["county_fips"] == "55025"
    assert birth(bundle, county=None)["county_fips"] is None
    del resource(bundle, "mother-1")["address"][0]["state"]
    assert birth(bundle)["county_fips"] is None     # unknown state: unknown county


def test_the_county_comes_from_the_vital_records_district_code_and_the_state():
    bundle = birth_bundle()
    resource(bundle, "mother-1")["address"] = [{
        "use": "home", "district": "Salt Lake", "state": "UT",
        "_district": {"extension": [{
            "url": "http://hl7.org/fhir/us/vr-common-library/StructureDefinition/DistrictCode",
            "valueString": "035"}]}}]
    assert birth(bundle)["county_fips"] == "49035"


def coverage(code: str, beneficiary: str = "RelatedPerson/mother-1") -> dict[str, Any]:
    return {"resourceType": "Coverage", "id": f"cov-{code}", "status": "active",
            "type": {"coding": [{"system": SOPT, "code": code}]},
            "beneficiary": {"reference": beneficiary},
            "payor": [{"display": "a payer"}]}


@pytest.mark.parametrize(("coverages", "expected"), [
    ([], None),
    ([coverage("2")], True),
    ([coverage("21")], True),
    ([coverage("5")], False),
    ([coverage("9999")], None),
    ([coverage("2", beneficiary="Patient/newborn-1")], None),
])
def test_medicaid_paying_for_the_birth_comes_from_the_mothers_coverage(coverages, expected):
    bundle = drop(birth_bundle(), "mc-1")
    for item in coverages:
        add(bundle, item)
    assert birth(bundle)["mother"]["medicaid_covered_birth"] is expected


def test_the_birth_facts_observation_still_says_medicaid_when_no_coverage_does():
    assert birth(birth_bundle())["mother"]["medicaid_covered_birth"] is True


def nicu(value_code: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"abnormal-{value_code}", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "73812-0"}]},
            "subject": {"reference": "Patient/newborn-1"},
            "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": value_code}]}}


def test_nicu_admission_is_null_unless_an_observation_says_it():
    bundle = drop(birth_bundle(), "nicu-1")
    assert birth(bundle)["child"]["nicu_admission"] is None
    assert birth(add(copy.deepcopy(bundle), nicu("830077005")))["child"]["nicu_admission"]
    assert birth(add(bundle, nicu("260413007")))["child"]["nicu_admission"] is False


def test_a_missing_birth_weight_is_named_as_the_fhir_observation_to_send():
    problems = refused(drop(birth_bundle(), "bw-1"))
    assert [(r, e) for r, e, _ in problems] == [
        ("Patient/newborn-1", "Observation (code http://loinc.org|8339-4)")]
    assert "birth weight" in problems[0][2] and "child." not in problems[0][2]


def test_a_weight_sent_as_unknown_is_null_and_one_in_pounds_is_converted():
    bundle = birth_bundle()
    weight = resource(bundle, "bw-1")
    del weight["valueQuantity"]
    weight["dataAbsentReason"] = {"coding": [{"code": "unknown"}]}
    assert birth(bundle)["child"]["birth_weight_grams"] is None
    del weight["dataAbsentReason"]
    weight["valueQuantity"] = {"value": 7.5, "code": "[lb_av]"}
    assert birth(bundle)["child"]["birth_weight_grams"] == 3402
    weight["valueQuantity"] = {"value": 3000}
    assert [(r, e) for r, e, _ in refused(bundle)] == [("Observation/bw-1",
                                                         "valueQuantity.code")]


def test_every_missing_element_is_named_in_one_answer():
    bundle = birth_bundle()
    del resource(bundle, "newborn-1")["birthDate"]
    del resource(bundle, "newborn-1")["gender"]
    del resource(bundle, "mother-1")["name"]
    del resource(bundle, "enc-1")["period"]
    where = {(r, e) for r, e, _ in refused(bundle)}
    assert where == {("Encounter/enc-1", "period.start"), ("Patient/newborn-1", "birthDate"),
                     ("Patient/newborn-1", "gender"), ("RelatedPerson/mother-1", "name.given"),
                     ("RelatedPerson/mother-1", "name.family")}


def test_a_fetal_death_report_is_not_taken_for_a_live_birth():
    bundle = add(birth_bundle(), {
        "resourceType": "Composition", "id": "fd", "status": "final",
        "type": {"coding": [{"system": LOINC, "code": "69045-3"}]},
        "date": "2026-11-06", "author": [{"display": "x"}], "title": "Fetal death report"})
    assert [(r, e) for r, e, _ in refused(bundle)] == [("Composition/fd", "type")]


def test_the_entry_count_includes_nested_bundles_and_is_checked_before_anything_else():
    inner = {"resourceType": "Bundle", "type": "collection", "entry": [{}] * 6}
    outer = {"resourceType": "Bundle", "type": "message",
             "entry": [{"resource": inner}] * 2}
    check_entry_count(outer, 14)
    with pytest.raises(BundleTooLarge) as caught:
        check_entry_count(outer, 13)
    assert caught.value.limit == 13 and "13" in str(caught.value)
    with pytest.raises(BundleTooLarge):
        check_entry_count({"resourceType": "Bundle", "entry": [{}] * 100_000}, 1000)
