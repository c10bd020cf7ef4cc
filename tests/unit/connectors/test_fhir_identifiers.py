"""Social Security numbers in FHIR identifiers, in every spelling real systems use, are
recognised and never chosen to name a person in an event."""

from __future__ import annotations

import pytest

from connectors.fhir_identifiers import SSN_ONLY, is_ssn, missing_id_message, record_id, ssn

V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
MPI = {"system": "https://state.example/mpi", "value": "MPI-0104411"}

SPELLINGS = [
    {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "623417788"},
    {"system": "http://hl7.org/fhir/sid/us-ssn/", "value": "623417788"},
    {"system": "HTTP://HL7.ORG/FHIR/SID/US-SSN", "value": "623417788"},
    {"system": "https://hl7.org/fhir/sid/us-ssn", "value": "623417788"},
    {"system": "urn:oid:2.16.840.1.113883.4.1", "value": "623417788"},
    {"system": "urn:oid:2.16.840.1.113883.4.1/", "value": "623417788"},
    {"system": "URN:OID:2.16.840.1.113883.4.1", "value": "623417788"},
    {"system": "2.16.840.1.113883.4.1", "value": "623417788"},
    {"type": {"coding": [{"system": V2, "code": "SS"}]}, "value": "623417788"},
    {"type": {"coding": [{"system": V2 + "/", "code": "ss"}]},
     "system": "https://hospital.example/ids", "value": "623417788"},
    {"type": {"coding": [{"system": "http://hl7.org/fhir/v2/0203", "code": "SS"}]},
     "value": "623417788"},
    {"type": {"coding": [{"code": "SS"}]}, "value": "623417788"},
    {"type": {"coding": [{"code": "SSN"}]}, "value": "623417788"},
    {"type": {"text": "Social Security Number"}, "value": "623417788"},
    {"system": "https://hospital.example/ids", "value": "623-41-7788"},
]


@pytest.mark.parametrize("identifier", SPELLINGS)
def test_every_spelling_of_an_ssn_is_recognised_and_never_names_the_person(identifier):
    assert is_ssn(identifier)
    person = {"identifier": [identifier, MPI]}
    assert record_id(person) == "MPI-0104411"
    assert ssn(person) == identifier["value"]
    alone = {"identifier": [identifier]}
    assert record_id(alone) is None
    assert missing_id_message(alone) == SSN_ONLY
    assert identifier["value"] not in missing_id_message(alone)


@pytest.mark.parametrize("identifier", [
    {"system": "https://hospital.example/mrn", "value": "9932702"},
    {"type": {"coding": [{"system": V2, "code": "MR"}]}, "value": "623417788"},
    {"type": {"coding": [{"system": "https://local.example/codes", "code": "SS"}]},
     "value": "A-77"},
])
def test_other_identifiers_are_not_taken_for_ssns(identifier):
    assert not is_ssn(identifier)
    assert record_id({"identifier": [identifier]}) == identifier["value"]


def test_the_current_official_identifier_is_preferred_and_old_ones_never_used():
    person = {"identifier": [
        {"use": "old", "system": "https://x/mrn", "value": "OLD-1"},
        {"use": "secondary", "system": "https://x/mrn", "value": "SEC-1"},
        {"use": "official", "system": "https://x/mpi", "value": "MPI-1"}]}
    assert record_id(person) == "MPI-1"
    assert record_id({"identifier": [person["identifier"][0]]}) is None
