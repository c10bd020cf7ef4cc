"""Splink on DuckDB: training, and the compiled scorer agreeing with Splink's predict()."""

from __future__ import annotations

import random

import duckdb
import pytest

from linkage.identity import normalise
from linkage.memory_index import MemoryPersonIndex
from linkage.resolver import PersonResolver
from linkage.retrain import apply, propose
from linkage.similarity import damerau_levenshtein, jaro_winkler_similarity
from linkage.splink_model import TrainingOptions, splink_predict, train
from linkage.synthetic import SyntheticPopulation, linked_dataset
from linkage.thresholds import Thresholds

THRESHOLDS = Thresholds.from_probabilities(link=0.99, review=0.5)
FAST = TrainingOptions(u_max_pairs=2e5)


@pytest.fixture(scope="module")
def records():
    pop = SyntheticPopulation(seed=5)
    return [(r.record.agency_id.key, normalise(r.record), r.truth_id)
            for r in linked_dataset(pop, 3000)]


@pytest.fixture(scope="module")
def trained(records):
    return train(((k, i) for k, i, _ in records), FAST)


def test_string_functions_equal_duckdbs_on_random_and_real_names():
    rng = random.Random(3)
    names = ["martha", "marhta", "dixon", "dicksonx", "jon", "john", "lindqvist",
             "lindquist", "ca", "abc", "a", "b", "jolene", "joline"]
    pairs = [(a, b) for a in names for b in names]
    for _ in range(2000):
        a = "".join(rng.choice("abcdef") for _ in range(rng.randint(1, 10)))
        b = "".join(rng.choice("abcdef") for _ in range(rng.randint(1, 10)))
        pairs.append((a, b))
    rows = duckdb.connect().execute(
        "SELECT jaro_winkler_similarity(a, b), damerau_levenshtein(a, b) "
        "FROM (SELECT unnest($1) AS a, unnest($2) AS b)",
        [[a for a, _ in pairs], [b for _, b in pairs]]).fetchall()
    for (a, b), (jw, dl) in zip(pairs, rows, strict=True):
        assert jaro_winkler_similarity(a, b) == pytest.approx(jw, abs=1e-12), (a, b)
        assert damerau_levenshtein(a, b) == dl, (a, b)


@pytest.mark.slow
def test_compiled_scorer_gives_splinks_match_weight_for_every_predicted_pair(records,
                                                                              trained):
    model, splink_json = trained
    identities = {k: i for k, i, _ in records}
    pairs = splink_predict(((k, i) for k, i, _ in records), splink_json)
    assert len(pairs) > 1000
    for left, right, weight in pairs:
        assert model.score(identities[left], identities[right]).match_weight == (
            pytest.approx(weight, abs=1e-9))


@pytest.mark.slow
def test_trained_model_links_the_synthetic_population_accurately(trained):
    model, _ = trained
    resolver = PersonResolver(MemoryPersonIndex(), model, THRESHOLDS)
    truths_of: dict[str, set[int]] = {}
    people_of: dict[int, set[str]] = {}
    for synthetic in linked_dataset(SyntheticPopulation(seed=5), 3000):
        person = resolver.resolve(synthetic.record).person_id
        truths_of.setdefault(person, set()).add(synthetic.truth_id)
        people_of.setdefault(synthetic.truth_id, set()).add(person)
    mixed = sum(1 for truths in truths_of.values() if len(truths) > 1)
    split = sum(1 for persons in people_of.values() if len(persons) > 1)
    assert mixed / len(truths_of) < 0.005  # persons holding two real people
    assert split / len(people_of) < 0.05  # real people left in pieces (before review)


@pytest.mark.slow
def test_retraining_reports_changes_before_applying_them(records):
    index = MemoryPersonIndex()
    weak = train(((k, i) for k, i, _ in records[:400]), FAST)[0]
    resolver = PersonResolver(index, weak, THRESHOLDS)
    pop = SyntheticPopulation(seed=5)
    for synthetic in linked_dataset(pop, 3000):
        resolver.resolve(synthetic.record)
    seq_before = index.last_seq()

    proposal = propose(index, weak, THRESHOLDS, FAST)

    assert index.last_seq() == seq_before and resolver.model is weak
    assert proposal.pairs_scored > 0
    assert sum(n for _, _, n in proposal.transitions) == len(proposal.changes)
    opened = apply(resolver, proposal)
    assert resolver.model is proposal.model
    assert len(opened) <= len(proposal.newly_linked)
    assert index.last_seq() == seq_before + len(opened)
