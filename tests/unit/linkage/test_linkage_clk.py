"""Privacy-preserving matching: encodings made by agencies, compared by the broker."""

from __future__ import annotations

import pytest

from connectors.linkage_encoding import ClkEncoder
from linkage.clk import ClkError, ClkIndex
from linkage.synthetic import SyntheticPopulation
from tests.unit.linkage.linkage_people import hospital, hotline

SECRET = b"agreement cw-vr-2026: 32+ random bytes, never sent to the broker"


@pytest.fixture(scope="module")
def encoder() -> ClkEncoder:
    return ClkEncoder.create(SECRET)


def test_clk_matching_finds_the_true_person_among_two_thousand(encoder):
    pop = SyntheticPopulation(seed=21, tail_surnames=5000)
    people = pop.people(2000)
    index = ClkIndex()
    for person in people:
        index.add(f"cw|person|{person.truth_id}", encoder.encode(
            pop.observe(person, "cps-hotline", clean=True).record))
    found = 0
    for person in people[:200]:
        noisy = pop.observe(person, "vital-records").record
        best = index.match(encoder.encode(noisy), threshold=0.8, limit=1)
        found += bool(best) and best[0].record_key == f"cw|person|{person.truth_id}"
    assert found >= 180  # noisy records: most, not all, clear the threshold


def test_a_nickname_and_a_misspelling_keep_the_encodings_similar(encoder):
    index = ClkIndex()
    index.add("hospital", encoder.encode(hospital()))
    [match] = index.match(encoder.encode(hotline(given_name="Jolene",
                                                 family_name="Lindquist")), 0.8)
    assert match.record_key == "hospital" and 0.8 <= match.dice < 1.0


def test_encodings_under_another_secret_do_not_match(encoder):
    index = ClkIndex()
    index.add("hospital", encoder.encode(hospital()))
    other = ClkEncoder.create(b"another agreement's secret, also 32 bytes or more")
    assert index.match(other.encode(hospital()), 0.8) == ()


def test_the_same_record_always_encodes_the_same(encoder):
    assert encoder.encode(hospital()) == encoder.encode(hospital())


@pytest.mark.parametrize("bad", ["not base64!", "AAAA"])
def test_a_malformed_clk_is_refused(bad):
    with pytest.raises(ClkError):
        ClkIndex().match(bad, 0.8)
