"""The linkage engine on the stream: who is linked to whom, and how clerks change it."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from linkage.default_model import default_model
from linkage.errors import LinkageError, ReviewStateError
from linkage.events import Linked, Merged, ReviewOpened, Unlinked, decode_event, encode_event
from linkage.memory_index import MemoryPersonIndex
from linkage.resolver import PersonResolver
from linkage.thresholds import Thresholds
from tests.unit.linkage.linkage_people import hospital, hotline, stranger

THRESHOLDS = Thresholds.from_probabilities(link=0.99, review=0.5)


def married_hotline(**changes: object):
    """The mother after marriage and a move: same name and birth date, new surname."""
    fields: dict[str, object] = dict(family_name="Parker", zip="53704", street_address=None,
                                     sex="F", phone=None)
    fields.update(changes)
    return hotline(**fields)


@pytest.fixture
def resolver() -> PersonResolver:
    ticks = itertools.count()
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    return PersonResolver(MemoryPersonIndex(), default_model(), THRESHOLDS,
                          clock=lambda: start + dt.timedelta(seconds=next(ticks)))


def test_mother_known_by_mrn_and_by_intake_id_is_one_person(resolver):
    first = resolver.resolve(hospital())
    second = resolver.resolve(hotline())
    assert first.outcome == "new_person"
    assert second.outcome == "link"
    assert second.person_id == first.person_id
    assert {r.record_key for r in resolver.index.records_of(first.person_id)} == {
        "st-marys-hospital|mrn|MRN0048213", "cps-hotline|intake|HL-2026-118204"}


def test_a_nickname_and_a_misspelt_surname_still_link(resolver):
    mother = resolver.resolve(hospital())
    again = resolver.resolve(hotline(given_name="Jo", family_name="Lindquist", phone=None))
    assert (again.outcome, again.method, again.person_id) == (
        "link", "probabilistic", mother.person_id)
    assert {e.field for e in again.evidence} >= {"given_name", "family_name", "dob"}


def test_an_agency_id_seen_before_wins_over_everything_else(resolver):
    mother = resolver.resolve(hospital())
    # The hospital corrects her record to values that alone would match nobody.
    moved = resolver.resolve(hospital(given_name="Jo", family_name="Parker",
                                      street_address="9 Elm St", zip="53218", phone=None))
    assert (moved.method, moved.person_id) == ("agency_id", mother.person_id)
    assert resolver.index.record(moved.record_key).identity.family == "parker"


def test_exact_name_and_birth_date_link_even_when_the_rest_differs(resolver):
    mother = resolver.resolve(hospital())
    other = resolver.resolve(hotline(street_address="9 Elm St", zip="53218", phone=None))
    assert (other.method, other.person_id) == ("exact_name_dob", mother.person_id)


def test_exact_name_and_birth_date_of_two_people_goes_to_review(resolver):
    resolver.resolve(hospital())
    resolver.resolve(hospital(mrn="MRN-TWIN", phone=None, street_address=None, zip=None))
    # Both hospital records are one person by rule; split them as a clerk would.
    twin = resolver.index.record("st-marys-hospital|mrn|MRN-TWIN")
    resolver.unlink(twin.record_key, by="steward", reason="different people")
    third = resolver.resolve(hotline())
    assert third.outcome == "review"
    assert "more than one person" in resolver.index.review(third.review_id).reason


def test_a_stranger_becomes_a_new_person(resolver):
    mother = resolver.resolve(hospital())
    other = resolver.resolve(stranger())
    assert other.outcome == "new_person" and other.person_id != mother.person_id


def test_an_uncertain_pair_lands_in_review_with_weights_not_values(resolver):
    mother = resolver.resolve(hospital())
    married = resolver.resolve(married_hotline())
    assert married.outcome == "review"
    assert married.person_id != mother.person_id  # provisional until a clerk decides
    item = resolver.index.review(married.review_id)
    assert item.candidate_person_id == mother.person_id
    assert THRESHOLDS.review_weight <= item.match_weight < THRESHOLDS.link_weight
    text = repr(item)
    for value in ("jolene", "parker", "lindqvist", "19950514", "53704"):
        assert value not in text.lower()


def test_review_resolved_same_rekeys_what_followed(resolver):
    mother = resolver.resolve(hospital())
    married = resolver.resolve(married_hotline())
    later = resolver.resolve(married_hotline(street_address="9 Elm St"))  # same intake id
    assert later.person_id == married.person_id

    change = resolver.resolve_review(married.review_id, "same", by="clerk-7")

    assert resolver.person_of(married.record_key) == mother.person_id
    assert resolver.current_person(married.person_id) == mother.person_id
    [rekey] = change.rekeys
    assert (rekey.record_key, rekey.from_person_id, rekey.to_person_id) == (
        married.record_key, married.person_id, mother.person_id)
    # Events resolved at seq married.seq and later were keyed by the provisional person.
    assert rekey.since_seq <= married.seq <= later.seq < rekey.at_seq
    assert resolver.index.review(married.review_id).status == "same"
    with pytest.raises(ReviewStateError):
        resolver.resolve_review(married.review_id, "different", by="clerk-7")


def test_review_resolved_different_keeps_two_people(resolver):
    mother = resolver.resolve(hospital())
    married = resolver.resolve(married_hotline())
    change = resolver.resolve_review(married.review_id, "different", by="clerk-7")
    assert change.rekeys == ()
    assert resolver.person_of(married.record_key) not in (None, mother.person_id)
    assert resolver.index.open_reviews() == ()


def test_an_unlink_is_recorded_and_reversible(resolver):
    mother = resolver.resolve(hospital())
    linked = resolver.resolve(hotline())
    unlink = resolver.unlink(linked.record_key, by="steward", reason="wrong person")
    [event] = unlink.events
    assert isinstance(event, Unlinked) and event.from_person_id == mother.person_id
    split_off = resolver.person_of(linked.record_key)
    assert split_off != mother.person_id
    assert unlink.rekeys[0].to_person_id == split_off

    undo = resolver.undo(event.seq, by="steward", reason="it was her after all")

    assert resolver.person_of(linked.record_key) == mother.person_id
    assert undo.rekeys[0].from_person_id == split_off
    causes = [a.cause for a in resolver.index.assignments(linked.record_key)]
    assert causes == ["exact_name_dob", "unlinked", "clerical"]


def test_a_merge_moves_every_record_and_can_be_undone(resolver):
    mother = resolver.resolve(hospital())
    other = resolver.resolve(stranger())
    change = resolver.merge(other.person_id, mother.person_id, by="steward", reason="test")
    [merged] = change.events
    assert isinstance(merged, Merged)
    assert resolver.current_person(other.person_id) == mother.person_id
    assert resolver.person_of(other.record_key) == mother.person_id

    resolver.undo(merged.seq, by="steward", reason="not the same")

    assert resolver.person_of(other.record_key) == other.person_id
    assert resolver.current_person(other.person_id) == other.person_id


def test_a_person_cannot_be_merged_into_itself(resolver):
    mother = resolver.resolve(hospital())
    with pytest.raises(LinkageError):
        resolver.merge(mother.person_id, mother.person_id, by="steward", reason="test")


def test_replaying_the_events_rebuilds_the_same_index(resolver):
    resolver.resolve(hospital())
    married = resolver.resolve(married_hotline())
    resolver.resolve(stranger())
    resolver.resolve_review(married.review_id, "same", by="clerk")
    resolver.unlink(married.record_key, by="steward", reason="test")
    events = list(resolver.index.events())
    kinds = {type(e) for e in events}
    assert {Linked, ReviewOpened, Merged, Unlinked} <= kinds

    rebuilt = MemoryPersonIndex()
    rebuilt.apply([decode_event(encode_event(e)) for e in events])

    original = resolver.index
    assert sorted(map(repr, rebuilt.iter_records())) == sorted(map(repr, original.iter_records()))
    for record in original.iter_records():
        assert rebuilt.assignments(record.record_key) == original.assignments(record.record_key)
    assert rebuilt.review(married.review_id) == original.review(married.review_id)
