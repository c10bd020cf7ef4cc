"""The person-index contract, over every adapter (in memory and SQLite).

An index is a projection of its linkage events; these tests pin down what each event
does, that a batch is all or nothing, and that the events come back as they went in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from linkage.blocking import blocking_keys
from linkage.errors import EventOrderError, ReviewStateError, UnknownRecordError
from linkage.events import (
    LinkageEvent,
    Linked,
    Merged,
    RecordAdded,
    ReviewOpened,
    ReviewResolved,
    Unlinked,
)
from linkage.identity import NormalisedIdentity
from linkage.index import PersonIndex
from linkage.memory_index import MemoryPersonIndex
from linkage.scoring import FieldEvidence
from linkage.sqlite_index import SqlitePersonIndex

AT = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
JOLENE = NormalisedIdentity("jolene", "jolene", "lindqvist", "19950514", "f",
                            "418 larkspur ct apt 2", "53703", "6085550142")
MARCUS = NormalisedIdentity("marcus", "marcus", "oyelaran", "19881102", "m", None, "53218",
                            None)
EVIDENCE = (FieldEvidence("given_name", "exact", 6.2), FieldEvidence("dob", "exact", 13.1))


@pytest.fixture(params=["memory", "sqlite"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PersonIndex]:
    opened: PersonIndex = (MemoryPersonIndex() if request.param == "memory"
                           else SqlitePersonIndex(tmp_path / "persons.db"))
    yield opened
    opened.close()


def add(seq: int, key: str, identity: NormalisedIdentity = JOLENE) -> RecordAdded:
    return RecordAdded(seq, AT, key, identity)


def link(seq: int, key: str, person: str, method: str = "new_person") -> Linked:
    return Linked(seq, AT, key, person, method, 12.5, EVIDENCE)  # type: ignore[arg-type]


def two_people(index: PersonIndex) -> None:
    index.apply([add(1, "h|mrn|1"), link(2, "h|mrn|1", "hp_a"),
                 add(3, "m|member|9", MARCUS), link(4, "m|member|9", "hp_b")])


def test_an_empty_index_knows_nothing(index):
    assert index.last_seq() == 0
    assert index.counts() == (0, 0)
    assert index.record("h|mrn|1") is None
    assert index.candidates(blocking_keys(JOLENE), 10) == ()
    assert list(index.events()) == []


def test_added_and_linked_records_are_found_by_key_blocking_key_and_person(index):
    two_people(index)
    record = index.record("h|mrn|1")
    assert (record.identity, record.person_id) == (JOLENE, "hp_a")
    assert [r.record_key for r in index.candidates(blocking_keys(JOLENE), 10)] == ["h|mrn|1"]
    assert [r.record_key for r in index.records_of("hp_b")] == ["m|member|9"]
    assert [(a.seq, a.person_id, a.cause) for a in index.assignments("h|mrn|1")] == [
        (2, "hp_a", "new_person")]
    assert index.counts() == (2, 2)
    assert index.last_seq() == 4


def test_events_must_come_in_seq_order(index):
    with pytest.raises(EventOrderError):
        index.apply([add(2, "h|mrn|1")])
    index.apply([add(1, "h|mrn|1")])
    with pytest.raises(EventOrderError):
        index.apply([add(1, "h|mrn|2")])
    assert index.last_seq() == 1


def test_a_batch_with_one_bad_event_changes_nothing(index):
    two_people(index)
    with pytest.raises(UnknownRecordError):
        index.apply([add(5, "h|mrn|2"), link(6, "h|mrn|2", "hp_a"),
                     link(7, "nobody|x|1", "hp_a")])
    assert index.last_seq() == 4
    assert index.record("h|mrn|2") is None
    assert [r.record_key for r in index.records_of("hp_a")] == ["h|mrn|1"]
    assert len(list(index.events())) == 4


def test_adding_a_known_record_replaces_its_values_and_blocking_keys(index):
    two_people(index)
    moved = NormalisedIdentity("jo", "jo", "parker", "19990101", "f", None, "53704", None)
    index.apply([add(5, "h|mrn|1", moved)])
    assert index.record("h|mrn|1").identity == moved
    assert index.record("h|mrn|1").person_id == "hp_a"
    assert index.candidates(blocking_keys(JOLENE), 10) == ()
    assert [r.record_key for r in index.candidates(blocking_keys(moved), 10)] == ["h|mrn|1"]


def test_reviews_open_resolve_once_and_list_oldest_first(index):
    two_people(index)
    index.apply([
        ReviewOpened(5, AT, "rv_2", "m|member|9", "hp_a", 3.5, EVIDENCE, "uncertain"),
        ReviewOpened(6, AT, "rv_1", "h|mrn|1", "hp_b", 1.0, EVIDENCE, "uncertain"),
    ])
    assert [r.review_id for r in index.open_reviews()] == ["rv_2", "rv_1"]
    index.apply([ReviewResolved(7, AT, "rv_2", "different", "clerk")])
    item = index.review("rv_2")
    assert (item.status, item.resolved_by, item.resolved_seq, item.evidence) == (
        "different", "clerk", 7, EVIDENCE)
    assert [r.review_id for r in index.open_reviews()] == ["rv_1"]
    with pytest.raises(ReviewStateError):
        index.apply([ReviewResolved(8, AT, "rv_2", "same", "clerk")])


def test_unlink_moves_one_record_and_checks_where_it_was(index):
    two_people(index)
    with pytest.raises(UnknownRecordError):
        index.apply([Unlinked(5, AT, "h|mrn|1", "hp_b", "hp_c", "steward", "wrong")])
    index.apply([Unlinked(5, AT, "h|mrn|1", "hp_a", "hp_c", "steward", "wrong")])
    assert index.record("h|mrn|1").person_id == "hp_c"
    assert [a.cause for a in index.assignments("h|mrn|1")] == ["new_person", "unlinked"]


def test_merge_moves_records_and_redirects_until_the_id_is_used_again(index):
    two_people(index)
    index.apply([Merged(5, AT, "hp_b", "hp_a", ("m|member|9",), "steward", "same")])
    assert {r.record_key for r in index.records_of("hp_a")} == {"h|mrn|1", "m|member|9"}
    assert index.records_of("hp_b") == ()
    assert index.merged_into("hp_b") == "hp_a"
    assert index.counts() == (2, 1)
    index.apply([Unlinked(6, AT, "m|member|9", "hp_a", "hp_b", "steward", "undo")])
    assert index.merged_into("hp_b") is None
    assert index.record("m|member|9").person_id == "hp_b"


def test_events_come_back_in_order_and_unchanged(index):
    two_people(index)
    more: list[LinkageEvent] = [
        ReviewOpened(5, AT, "rv_1", "h|mrn|1", "hp_b", 1.25, EVIDENCE, "uncertain"),
        ReviewResolved(6, AT, "rv_1", "same", "clerk"),
        Merged(7, AT, "hp_a", "hp_b", ("h|mrn|1",), "clerk", "review rv_1"),
    ]
    index.apply(more)
    events = list(index.events())
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6, 7]
    assert events[4:] == more
    assert list(index.events(after_seq=5)) == more[1:]


def warm(index: PersonIndex, keys: tuple[str, ...], persons: tuple[str, ...]) -> None:
    """Ask what the stream asks, so an adapter that keeps answers has them kept."""
    for key in keys:
        index.record(key)
    for person in persons:
        index.records_of(person)
        index.merged_into(person)


def test_answers_read_before_a_change_are_not_given_after_it(index):
    two_people(index)
    warm(index, ("h|mrn|1", "m|member|9", "h|mrn|2"), ("hp_a", "hp_b", "hp_c"))
    index.apply([add(5, "h|mrn|2"), link(6, "h|mrn|2", "hp_a")])
    assert index.record("h|mrn|2").person_id == "hp_a"
    assert [r.record_key for r in index.records_of("hp_a")] == ["h|mrn|1", "h|mrn|2"]

    warm(index, ("h|mrn|1", "m|member|9"), ("hp_a", "hp_b"))
    index.apply([Merged(7, AT, "hp_b", "hp_a", ("m|member|9",), "steward", "same")])
    assert index.merged_into("hp_b") == "hp_a"
    assert index.records_of("hp_b") == ()
    assert index.record("m|member|9").person_id == "hp_a"
    assert len(index.records_of("hp_a")) == 3

    warm(index, ("h|mrn|1",), ("hp_a", "hp_b", "hp_c"))
    index.apply([Unlinked(8, AT, "h|mrn|1", "hp_a", "hp_c", "steward", "wrong")])
    assert index.record("h|mrn|1").person_id == "hp_c"
    assert [r.record_key for r in index.records_of("hp_c")] == ["h|mrn|1"]
    assert [r.record_key for r in index.records_of("hp_a")] == ["h|mrn|2", "m|member|9"]

    moved = NormalisedIdentity("jo", "jo", "parker", "19990101", "f", None, "53704", None)
    index.apply([add(9, "h|mrn|1", moved)])
    assert index.record("h|mrn|1").identity == moved
    assert index.records_of("hp_c")[0].identity == moved


def test_a_failed_batch_leaves_no_trace_in_later_answers(index):
    two_people(index)
    warm(index, ("h|mrn|1", "h|mrn|2"), ("hp_a", "hp_c"))
    with pytest.raises(UnknownRecordError):
        index.apply([Unlinked(5, AT, "h|mrn|1", "hp_a", "hp_c", "steward", "wrong"),
                     add(6, "h|mrn|2"), link(7, "h|mrn|2", "hp_c"),
                     Merged(8, AT, "hp_b", "hp_a", ("h|mrn|1",), "steward", "same")])
    assert index.record("h|mrn|1").person_id == "hp_a"
    assert index.record("h|mrn|2") is None
    assert index.records_of("hp_c") == ()
    assert [r.record_key for r in index.records_of("hp_a")] == ["h|mrn|1"]
    assert index.merged_into("hp_b") is None


def test_writes_are_seen_at_once_while_reads_are_held(index):
    two_people(index)
    index.hold_reads()
    warm(index, ("h|mrn|1",), ("hp_a", "hp_b"))
    index.apply([Merged(5, AT, "hp_a", "hp_b", ("h|mrn|1",), "steward", "same")])
    assert index.record("h|mrn|1").person_id == "hp_b"
    assert index.merged_into("hp_a") == "hp_b"
    assert len(index.records_of("hp_b")) == 2
    index.release_reads()
    assert index.records_of("hp_a") == ()
