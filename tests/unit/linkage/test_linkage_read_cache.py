"""The person index's read cache: bounded, and a change drops what it touched."""

from __future__ import annotations

import pytest

from linkage.identity import NormalisedIdentity
from linkage.index import IndexedRecord
from linkage.read_cache import IndexReadCache

JOLENE = NormalisedIdentity("jolene", "jolene", "lindqvist", "19950514", "f", None, "53703",
                            None)


def record(key: str, person: str | None = "hp_a") -> IndexedRecord:
    return IndexedRecord(key, JOLENE, person)


def test_a_full_map_is_emptied_before_it_grows_past_its_cap():
    cache = IndexReadCache(max_entries=3)
    for n in range(3):
        cache.keep_record(f"h|mrn|{n}", record(f"h|mrn|{n}"))
    assert len(cache) == 3
    cache.keep_record("h|mrn|9", record("h|mrn|9"))
    assert len(cache) == 1
    assert cache.record("h|mrn|9") == record("h|mrn|9")
    with pytest.raises(KeyError):
        cache.record("h|mrn|0")


def test_a_record_that_moves_drops_itself_and_both_persons_records_only():
    cache = IndexReadCache()
    cache.keep_record("h|mrn|1", record("h|mrn|1"))
    cache.keep_record("h|mrn|2", record("h|mrn|2"))
    for person in ("hp_a", "hp_b", "hp_c"):
        cache.keep_records_of(person, ())
    cache.keep_redirect("hp_b", "hp_a")
    cache.record_changed("h|mrn|1", "hp_a", "hp_b")
    for gone in (lambda: cache.record("h|mrn|1"), lambda: cache.records_of("hp_a"),
                 lambda: cache.records_of("hp_b")):
        with pytest.raises(KeyError):
            gone()
    assert cache.record("h|mrn|2") == record("h|mrn|2")
    assert cache.records_of("hp_c") == ()
    assert cache.redirect("hp_b") == "hp_a"
    cache.redirect_changed("hp_b")
    with pytest.raises(KeyError):
        cache.redirect("hp_b")


def test_an_unknown_record_is_kept_as_unknown_until_it_is_added():
    cache = IndexReadCache()
    cache.keep_record("h|mrn|1", None)
    assert cache.record("h|mrn|1") is None
    cache.record_changed("h|mrn|1", None)
    with pytest.raises(KeyError):
        cache.record("h|mrn|1")


def test_a_cache_without_room_is_refused():
    with pytest.raises(ValueError, match="at least one entry"):
        IndexReadCache(max_entries=0)
