"""Birth match: a birth's parents against child welfare's list; matches and only matches."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.linkage_encoding import ClkEncoder
from linkage.birth_match import BirthParent, WatchEntry, WatchList
from linkage.default_model import default_model
from linkage.identity import AgencyId, IdentityRecord
from linkage.thresholds import Thresholds
from tests.unit.linkage.linkage_people import hospital, stranger

LINK = Thresholds.from_probabilities(link=0.99, review=0.5).link_weight
SECRET = b"child welfare and vital records share this; 32+ bytes"


def cw_record(entry: str, **fields: object) -> IdentityRecord:
    base: dict[str, object] = dict(given_name="Jolene", family_name="Lindqvist",
                                   birth_date=dt.date(1995, 5, 14), sex="F")
    base.update(fields)
    return IdentityRecord(AgencyId("cps", "person", entry), **base)  # type: ignore[arg-type]


@pytest.fixture
def watch() -> WatchList:
    watch = WatchList(default_model(), LINK)
    watch.add_identity(WatchEntry("case-17", "prior_tpr"), cw_record("cw-17", zip="53703"))
    watch.add_identity(WatchEntry("case-42", "open_case"), cw_record(
        "cw-42", given_name="Dana", family_name="Whitcomb", birth_date=dt.date(1990, 2, 3)))
    return watch


def test_a_mother_on_the_list_is_matched_with_evidence_not_values(watch):
    [match] = watch.match_birth([BirthParent("mother", hospital())])
    assert (match.role, match.entry.entry_id, match.entry.reason, match.method) == (
        "mother", "case-17", "prior_tpr", "identity")
    assert match.score >= LINK
    assert {e.field for e in match.evidence} >= {"given_name", "family_name", "dob"}
    assert "jolene" not in repr(match).lower() and "1995" not in repr(match)


def test_a_birth_whose_parents_are_not_listed_produces_nothing(watch):
    assert watch.match_birth([BirthParent("mother", stranger()),
                              BirthParent("father", stranger(member="X9"))]) == ()


def test_a_lookalike_below_the_link_threshold_is_not_a_match(watch):
    sister = hospital(birth_date=dt.date(1997, 8, 2), street_address=None, phone=None)
    assert watch.match_birth([BirthParent("mother", sister)]) == ()


def test_a_removed_entry_no_longer_matches(watch):
    watch.remove("case-17")
    assert watch.match_birth([BirthParent("mother", hospital())]) == ()


def test_encoded_list_and_encoded_birth_match_without_identifiers():
    encoder = ClkEncoder.create(SECRET)
    watch = WatchList(default_model(), LINK)
    watch.add_clk(WatchEntry("case-17", "prior_tpr"), encoder.encode(cw_record("cw-17",
                                                                               zip="53703")))
    watch.add_clk(WatchEntry("case-42", "open_case"), encoder.encode(cw_record(
        "cw-42", given_name="Dana", family_name="Whitcomb", birth_date=dt.date(1990, 2, 3))))
    [match] = watch.match_birth([BirthParent("mother", clk=encoder.encode(hospital()))])
    assert (match.entry.entry_id, match.method) == ("case-17", "clk")
    assert watch.match_birth([BirthParent("mother", clk=encoder.encode(stranger()))]) == ()
