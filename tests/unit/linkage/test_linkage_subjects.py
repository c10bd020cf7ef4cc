"""Reading each subject's identity out of an event, as the bundle's mapping says."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from linkage.errors import IdentityError
from linkage.identity import AgencyId, normalise
from linkage.subjects import SubjectMapping, identity_from_event

BIRTH = json.loads((Path(__file__).parents[3] / "schemas" / "events" /
                    "birth.example.json").read_text())
MOTHER = SubjectMapping(
    role="mother", id_system="mrn", id_field="subject_id", sex="FEMALE", keys_event=True,
    fields=(("given_name", "mother.first_name"), ("family_name", "mother.last_name"),
            ("birth_date", "mother.birth_date"), ("street_address", "mother.street_address"),
            ("zip", "mother.zip"), ("phone", "mother.phone")))


def test_the_mother_of_the_example_birth_is_read_with_her_hospital_id():
    record = identity_from_event(BIRTH, "st-marys-hospital", MOTHER)
    assert record.agency_id.key == "st-marys-hospital|mrn|MPI-0048213"
    assert record.birth_date == dt.date(1995, 5, 16)  # Avro date 9266
    identity = normalise(record)
    assert (identity.given, identity.family, identity.sex, identity.zip) == (
        "jolene", "lindqvist", "f", "53703")


def test_an_event_without_the_agency_id_is_refused_by_role_not_value():
    event = {**BIRTH, "subject_id": ""}
    with pytest.raises(IdentityError, match="mother's agency id"):
        identity_from_event(event, "st-marys-hospital", MOTHER)


def test_a_mapping_naming_an_unknown_field_is_refused():
    with pytest.raises(IdentityError, match="ssn"):
        SubjectMapping("mother", "mrn", "subject_id", (("ssn", "mother.ssn"),))


def test_an_agency_id_already_read_from_the_event_makes_the_same_identity():
    agency_id = AgencyId("st-marys-hospital", "mrn", str(BIRTH["subject_id"]))
    assert identity_from_event(BIRTH, "st-marys-hospital", MOTHER, agency_id) == \
        identity_from_event(BIRTH, "st-marys-hospital", MOTHER)


def test_identity_fields_are_read_at_their_dotted_paths_however_deep():
    mapping = SubjectMapping("mother", "mrn", "ids.mrn", (
        ("given_name", "a.b.c.first"), ("family_name", "last"), ("zip", "a.missing.zip"),
        ("phone", "a.b.c.first.too_deep")))
    event = {"ids": {"mrn": "M-7"}, "a": {"b": {"c": {"first": "Ngoc"}}}, "last": "Vang"}
    record = identity_from_event(event, "st-marys-hospital", mapping)
    assert record.agency_id.key == "st-marys-hospital|mrn|M-7"
    assert (record.given_name, record.family_name, record.zip, record.phone) == (
        "Ngoc", "Vang", None, None)
