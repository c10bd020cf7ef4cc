"""The SQLite person index on disk: durable, and rebuilt from its own events."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from linkage.default_model import default_model
from linkage.errors import EventOrderError, UnknownRecordError
from linkage.events import Unlinked, decode_event, encode_event
from linkage.resolver import PersonResolver
from linkage.sqlite_index import SqlitePersonIndex
from linkage.synthetic import SyntheticPopulation, linked_dataset
from linkage.thresholds import Thresholds
from tests.unit.linkage.linkage_people import hospital, hotline

THRESHOLDS = Thresholds.from_probabilities(link=0.99, review=0.5)
AT = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)


def snapshot(index: SqlitePersonIndex) -> tuple[object, ...]:
    records = sorted((r.record_key, r.identity, r.person_id) for r in index.iter_records())
    history = [index.assignments(key) for key, _, _ in records]
    return (records, history, index.open_reviews(10**6), index.counts(), index.last_seq())


def test_links_survive_closing_and_reopening(tmp_path):
    path = tmp_path / "persons.db"
    index = SqlitePersonIndex(path)
    resolver = PersonResolver(index, default_model(), THRESHOLDS)
    mother = resolver.resolve(hospital())
    index.close()

    reopened = SqlitePersonIndex(path)
    again = PersonResolver(reopened, default_model(), THRESHOLDS).resolve(hotline())
    assert again.person_id == mother.person_id
    assert reopened.last_seq() == again.seq
    reopened.close()


@pytest.mark.slow
def test_replaying_the_stored_events_rebuilds_an_identical_index(tmp_path):
    index = SqlitePersonIndex(tmp_path / "persons.db")
    resolver = PersonResolver(index, default_model(), THRESHOLDS)
    for synthetic in linked_dataset(SyntheticPopulation(seed=9), 400):
        resolver.resolve(synthetic.record)
    for item in index.open_reviews(5):
        resolver.resolve_review(item.review_id, "same", by="clerk")
    some_record = next(index.iter_records()).record_key
    resolver.unlink(some_record, by="steward", reason="test")

    encoded = [encode_event(e) for e in index.events()]
    rebuilt = SqlitePersonIndex(tmp_path / "rebuilt.db")
    for start in range(0, len(encoded), 97):  # in batches, as a topic would be read
        rebuilt.apply([decode_event(text) for text in encoded[start:start + 97]])

    assert snapshot(rebuilt) == snapshot(index)
    index.close()
    rebuilt.close()


def test_a_failed_batch_leaves_the_database_as_it_was(tmp_path):
    path = tmp_path / "persons.db"
    index = SqlitePersonIndex(path)
    resolver = PersonResolver(index, default_model(), THRESHOLDS)
    resolver.resolve(hospital())
    before = snapshot(index)
    events = list(index.events())
    with pytest.raises(EventOrderError):
        index.apply([*events[-1:], *events[:1]])  # the last seq again: refused
    assert snapshot(index) == before
    index.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == len(events)


def test_a_write_by_another_connection_is_seen_by_the_next_read(tmp_path):
    """The router's index keeps what it read in memory; a commit to the same file by
    anyone else (another instance, another process) must show in its next answer."""
    path = tmp_path / "persons.db"
    reader, writer = SqlitePersonIndex(path), SqlitePersonIndex(path)
    resolver = PersonResolver(writer, default_model(), THRESHOLDS)
    mother = resolver.resolve(hospital())
    record_key = hospital().agency_id.key
    assert reader.record(record_key).person_id == mother.person_id
    assert [r.record_key for r in reader.records_of(mother.person_id)] == [record_key]
    assert reader.merged_into(mother.person_id) is None

    linked = resolver.resolve(hotline())                  # a link to the same person
    assert linked.person_id == mother.person_id
    assert len(reader.records_of(mother.person_id)) == 2
    assert reader.record(hotline().agency_id.key).person_id == mother.person_id

    change = resolver.unlink(hotline().agency_id.key, by="steward", reason="test")
    other = change.rekeys[0].to_person_id                 # a clerical unlink
    assert reader.record(hotline().agency_id.key).person_id == other
    assert [r.record_key for r in reader.records_of(mother.person_id)] == [record_key]

    resolver.merge(other, mother.person_id, by="steward", reason="test")   # a merge
    assert reader.merged_into(other) == mother.person_id
    assert reader.records_of(other) == ()
    assert len(reader.records_of(mother.person_id)) == 2
    reader.close()
    writer.close()


def test_a_write_after_another_connection_wrote_reads_what_it_wrote(tmp_path):
    """The instance that writes next checks, under the file's write lock, for what
    another connection committed before it relies on what it had read."""
    path = tmp_path / "persons.db"
    first, second = SqlitePersonIndex(path), SqlitePersonIndex(path)
    mother = PersonResolver(first, default_model(), THRESHOLDS).resolve(hospital())
    key = hospital().agency_id.key
    assert second.record(key).person_id == mother.person_id     # kept by `second`
    change = PersonResolver(first, default_model(), THRESHOLDS).unlink(
        key, by="steward", reason="test")
    moved_to = change.rekeys[0].to_person_id
    # `second` has not read since; an event that checks where the record is now must
    # see the unlink, not what `second` read before it.
    with pytest.raises(UnknownRecordError):
        second.apply([Unlinked(first.last_seq() + 1, AT, key, mother.person_id, "hp_x",
                               "steward", "stale")])
    second.apply([Unlinked(first.last_seq() + 1, AT, key, moved_to, "hp_x", "steward",
                           "fresh")])
    assert first.record(key).person_id == "hp_x"
    first.close()
    second.close()


def test_held_reads_see_other_writers_when_held_and_again_once_released(tmp_path,
                                                                          monkeypatch):
    """The router holds its reads for a batch: one look for other connections' commits
    when the batch begins, and a look before every read again once it ends (or once the
    hold lapses, for a batch that ended half way)."""
    path = tmp_path / "persons.db"
    router, other = SqlitePersonIndex(path), SqlitePersonIndex(path)
    resolver = PersonResolver(other, default_model(), THRESHOLDS)
    mother = resolver.resolve(hospital())
    key = hospital().agency_id.key
    router.hold_reads()                                  # sees what was committed before
    assert router.record(key).person_id == mother.person_id
    router.release_reads()

    moved = resolver.unlink(key, by="steward", reason="test").rekeys[0].to_person_id
    router.hold_reads()
    assert router.record(key).person_id == moved
    router.release_reads()

    back = resolver.undo(other.last_seq(), by="steward", reason="test")
    assert back.rekeys[0].to_person_id == mother.person_id
    assert router.record(key).person_id == mother.person_id     # released: looks again

    monkeypatch.setattr("linkage.sqlite_index.HOLD_SECONDS", 0.0)
    router.hold_reads()                                  # a hold never released lapses
    resolver.unlink(key, by="steward", reason="again")
    assert router.record(key).person_id != mother.person_id
    router.close()
    other.close()
