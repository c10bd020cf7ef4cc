"""Normalisation: spelling conventions must not look like differences between people."""

from __future__ import annotations

import datetime as dt

import pytest

from linkage.blocking import blocking_keys
from linkage.errors import IdentityError
from linkage.identity import AgencyId, IdentityRecord, normalise
from linkage.names import normalise_name, soundex
from linkage.person_ids import is_person_id, new_person_id
from tests.unit.linkage.linkage_people import hospital, hotline


@pytest.mark.parametrize(("raw", "expected"), [
    ("Jolene", "jolene"), ("  JOLENE ", "jolene"), ("Peña", "pena"), ("Zoë", "zoe"),
    ("O'Brien", "obrien"), ("de la Cruz", "delacruz"), ("Smith-Jones", "smithjones"),
    ("Robert Jr.", "robert"), ("", None), ("---", None), (None, None),
])
def test_names_normalise_case_diacritics_punctuation_and_suffixes(raw, expected):
    assert normalise_name(raw) == expected


def test_two_agencies_spelling_the_same_person_differently_normalise_alike():
    a, b = normalise(hospital()), normalise(hotline())
    assert (a.given, a.family, a.dob, a.street, a.zip, a.phone) == (
        b.given, b.family, b.dob, b.street, b.zip, b.phone)
    assert a.sex == "f" and b.sex is None


def test_nickname_keeps_the_written_name_and_adds_the_formal_one():
    identity = normalise(hospital(given_name="Bill"))
    assert (identity.given, identity.given_formal) == ("bill", "william")


@pytest.mark.parametrize(("name", "code"), [
    ("robert", "r163"), ("rupert", "r163"), ("ashcraft", "a261"), ("tymczak", "t522"),
    ("pfister", "p236"), ("lee", "l000")])
def test_soundex_matches_the_american_standard(name, code):
    assert soundex(name) == code


def test_swapped_names_and_day_month_swaps_share_blocking_keys():
    plain = set(blocking_keys(normalise(hospital())))
    swapped = set(blocking_keys(normalise(hospital(
        given_name="Lindqvist", family_name="Jolene", birth_date=dt.date(1995, 5, 14)))))
    may_4 = set(blocking_keys(normalise(hospital(birth_date=dt.date(1995, 5, 4)))))
    april_5 = set(blocking_keys(normalise(hospital(birth_date=dt.date(1995, 4, 5)))))
    assert plain & swapped
    assert {k for k in may_4 & april_5 if k.startswith(("d:", "f:"))}


def test_a_record_without_a_name_is_refused_naming_the_fields_not_the_values():
    with pytest.raises(IdentityError) as err:
        normalise(IdentityRecord(AgencyId("medicaid", "member", "M1"),
                                 birth_date=dt.date(1990, 1, 1), zip="53703"))
    assert "given_name" in str(err.value) and "53703" not in str(err.value)


def test_a_name_alone_is_too_little_to_match_on():
    with pytest.raises(IdentityError, match="too few identifying fields"):
        normalise(IdentityRecord(AgencyId("medicaid", "member", "M1"), given_name="Ann"))


@pytest.mark.parametrize("value", ["", "a|b", "x" * 129])
def test_agency_id_values_that_would_break_the_record_key_are_refused(value):
    with pytest.raises(IdentityError):
        AgencyId("medicaid", "member", value)


def test_person_ids_are_random_and_carry_no_personal_data():
    ids = {new_person_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_person_id(i) for i in ids)


@pytest.mark.parametrize(("agency", "system"), [
    ("st marys", "mrn"), ("st-marys-hospital", "m|rn"), ("", "mrn"),
    ("st-marys-hospital", "-mrn"), ("x" * 65, "mrn")])
def test_agency_and_numbering_scheme_are_checked_however_often_good_ones_recur(
        agency, system):
    # A good pair is checked once and remembered: a bad one is refused every time.
    for _ in range(3):
        assert AgencyId("st-marys-hospital", "mrn", "MPI-1").key == \
            "st-marys-hospital|mrn|MPI-1"
        with pytest.raises(IdentityError, match="agency id"):
            AgencyId(agency, system, "MPI-1")
