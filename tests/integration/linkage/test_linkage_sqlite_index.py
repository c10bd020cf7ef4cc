"""The SQLite person index on disk: durable, and rebuilt from its own events."""

from __future__ import annotations

import sqlite3

import pytest

from linkage.default_model import default_model
from linkage.errors import EventOrderError
from linkage.events import decode_event, encode_event
from linkage.resolver import PersonResolver
from linkage.sqlite_index import SqlitePersonIndex
from linkage.synthetic import SyntheticPopulation, linked_dataset
from linkage.thresholds import Thresholds
from tests.unit.linkage.linkage_people import hospital, hotline

THRESHOLDS = Thresholds.from_probabilities(link=0.99, review=0.5)


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
