"""FHIR R4 bundles a hospital might send: a birth with the mother as a RelatedPerson.

The bundles HL7 publishes (BFDR, US Core) are in `tests/fixtures/fhir/`.
"""

from __future__ import annotations

from typing import Any

LOINC = "http://loinc.org"
FACTS = "https://handoff.example.org/fhir/CodeSystem/birth-facts"


def _obs(obs_id: str, system: str, code: str, **value: Any) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{obs_id}", "resource": {
        "resourceType": "Observation", "id": obs_id, "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/newborn-1"}, **value}}


def birth_bundle(bundle_id: str = "cgh-birth-0001", mrn: str = "MRN-55501",
                 mother_mpi: str = "MPI-0104411",
                 mother_ids: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A birth as a hospital writes it with the mother as a RelatedPerson of the newborn.

    `mother_ids` replaces the mother's identifiers (an MPI, an SSN, a Medicaid number).
    """
    if mother_ids is None:
        mother_ids = [
            {"system": "https://state.example/mpi", "value": mother_mpi},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "623-41-7788"},
            {"type": {"coding": [{"code": "MA"}]}, "value": "WI-MA-55012277"}]
    return {
        "resourceType": "Bundle", "id": bundle_id, "type": "collection",
        "identifier": {"system": "https://county-general.example/bundles", "value": bundle_id},
        "entry": [
            {"fullUrl": "urn:uuid:newborn-1", "resource": {
                "resourceType": "Patient", "id": "newborn-1",
                "identifier": [{"system": "https://county-general.example/mrn", "value": mrn}],
                "name": [{"family": "Okafor", "given": ["Ada"]}],
                "gender": "female", "birthDate": "2026-11-06"}},
            {"fullUrl": "urn:uuid:mother-1", "resource": {
                "resourceType": "RelatedPerson", "id": "mother-1",
                "patient": {"reference": "Patient/newborn-1"},
                "relationship": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                    "code": "MTH"}]}],
                "identifier": mother_ids,
                "name": [{"family": "Okafor", "given": ["Grace"]}],
                "birthDate": "1997-03-12",
                "telecom": [{"system": "phone", "value": "608-555-0199"}],
                "address": [{"line": ["12 Willow Way"], "postalCode": "53703",
                             "district": "55025"}]}},
            {"fullUrl": "urn:uuid:enc-1", "resource": {
                "resourceType": "Encounter", "id": "enc-1", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                          "code": "IMP"},
                "subject": {"reference": "Patient/newborn-1"},
                "period": {"start": "2026-11-06T09:41:00Z"},
                "serviceProvider": {"identifier": {"value": "1467533928"}}}},
            _obs("bw-1", LOINC, "8339-4",
                 valueQuantity={"value": 3.12, "unit": "kg", "code": "kg"}),
            _obs("ga-1", LOINC, "11884-4", valueQuantity={"value": 39, "unit": "wk"}),
            _obs("nicu-1", FACTS, "nicu-admission", valueBoolean=False),
            _obs("sx-1", FACTS, "substance-exposure",
                 valueCodeableConcept={"coding": [{"system": FACTS, "code": "NONE"}]}),
            _obs("mc-1", FACTS, "medicaid-covered-birth", valueBoolean=True),
        ],
    }
