"""Training the Fellegi-Sunter model with Splink on DuckDB, and compiling it for the stream.

`train` builds Splink comparisons from `linkage.comparisons` (same levels, same order,
labelled with our level labels), estimates the prior from the deterministic rule, u by
random sampling and m by expectation maximisation over two blocking rules, then exports
the parameters into a `CompiledModel`. `splink_predict` scores a batch the way Splink
alone would (its own blocking, SQL and threshold): the benchmark's baseline, and the
reference the compiled scorer is tested against.

Splink and DuckDB are imported here only. The same settings run on Splink's Spark
backend (`SparkAPI`) when a state's index outgrows one machine.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on
from splink.internals.comparison_level_creator import ComparisonLevelCreator
from splink.internals.exceptions import EMTrainingException

from linkage.blocking import BLOCKING_KINDS, blocking_key_columns
from linkage.comparisons import COMPARISONS, Level
from linkage.errors import ModelError
from linkage.identity import IDENTITY_FIELDS, NormalisedIdentity
from linkage.scoring import (
    ComparisonParameters,
    CompiledModel,
    LevelParameters,
)

BLOCKING_COLUMNS = tuple(f"bk_{kind}" for kind in BLOCKING_KINDS)
EM_BLOCKING_RULES = (("bk_d",), ("bk_z",))
"""EM sessions: block on birth date + initial (trains the name and address levels), then on
names + ZIP (trains the birth date levels)."""
_BLOCK_NAMES = {("bk_d",): "a birth date and initial", ("bk_z",): "names and a ZIP code"}
DETERMINISTIC_RULE = "l.given = r.given AND l.family = r.family AND l.dob = r.dob"
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainingOptions:
    u_max_pairs: float = 2e6
    recall_of_deterministic_rule: float = 0.7
    em_record_sample_proportion: float = 1.0
    seed: int = 1


def _splink_level(level: Level) -> ComparisonLevelCreator:
    kind = level.kind
    col = level.column
    made: ComparisonLevelCreator
    if kind == "null":
        made = cll.NullLevel(col)
    elif kind == "exact":
        made = cll.ExactMatchLevel(col)
    elif kind == "reversed":
        made = cll.ColumnsReversedLevel(col, level.other, symmetrical=True)
    elif kind == "jaro_winkler":
        made = cll.JaroWinklerLevel(col, level.threshold)
    elif kind == "damerau_levenshtein":
        made = cll.DamerauLevenshteinLevel(col, int(level.threshold))
    elif kind == "dob_day_month_swapped":
        made = cll.CustomLevel(
            f"substr({col}_l, 1, 4) = substr({col}_r, 1, 4) AND "
            f"substr({col}_l, 5, 2) = substr({col}_r, 7, 2) AND "
            f"substr({col}_l, 7, 2) = substr({col}_r, 5, 2)")
    elif kind == "same_year":
        made = cll.CustomLevel(f"substr({col}_l, 1, 4) = substr({col}_r, 1, 4)")
    elif kind == "else":
        made = cll.ElseLevel()
    else:
        raise ModelError(f"no Splink level for kind {kind}")
    return made.configure(label_for_charts=level.label)


def splink_settings() -> SettingsCreator:
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        comparisons=[
            cl.CustomComparison([_splink_level(lv) for lv in c.levels],
                                output_column_name=c.name)
            for c in COMPARISONS],
        blocking_rules_to_generate_predictions=[block_on(col) for col in BLOCKING_COLUMNS],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def splink_table(records: Iterable[tuple[str, NormalisedIdentity]]) -> pa.Table:
    """Records as the Arrow table Splink reads: identity fields plus blocking key columns."""
    columns: dict[str, list[str | None]] = {
        name: [] for name in ("record_key", *IDENTITY_FIELDS, *BLOCKING_COLUMNS)}
    for key, identity in records:
        columns["record_key"].append(key)
        for name in IDENTITY_FIELDS:
            columns[name].append(getattr(identity, name))
        for kind, value in blocking_key_columns(identity).items():
            columns[f"bk_{kind}"].append(value)
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


def _linker(table: pa.Table, settings: SettingsCreator | dict[str, Any]) -> Linker:
    db_api = DuckDBAPI(duckdb.connect())
    frame = db_api.register(table, table_name="identities")
    return Linker(frame, settings, log_level=logging.WARNING)


def train(records: Iterable[tuple[str, NormalisedIdentity]],
          options: TrainingOptions | None = None) -> tuple[CompiledModel, dict[str, Any]]:
    """Train on the records (unsupervised); the compiled model and Splink's model JSON."""
    options = options or TrainingOptions()
    table = splink_table(records)
    if table.num_rows < 2:
        raise ModelError("training needs at least two records")
    linker = _linker(table, splink_settings())
    training = linker.training
    training.estimate_probability_two_random_records_match(
        [DETERMINISTIC_RULE], recall=options.recall_of_deterministic_rule)
    training.estimate_u_using_random_sampling(max_pairs=options.u_max_pairs,
                                              seed=options.seed)
    for columns in EM_BLOCKING_RULES:
        try:
            training.estimate_parameters_using_expectation_maximisation(
                block_on(*columns),
                record_sample_proportion=options.em_record_sample_proportion)
        except EMTrainingException:
            raise ModelError(f"too few records to train on: no two of the {table.num_rows} "
                             f"share {_BLOCK_NAMES.get(columns, columns)}") from None
    splink_json = _fill_unobserved(linker.misc.save_model_to_json())
    return compile_splink_model(splink_json), splink_json


UNOBSERVED_PROBABILITY = 1e-6
"""Splink's own value for a level never observed in training (its "level not observed")."""


def _fill_unobserved(splink_json: dict[str, Any]) -> dict[str, Any]:
    """Give levels training never saw Splink's unobserved probability, in the JSON itself,
    so Splink's predict() and the compiled scorer use the same numbers."""
    for comparison in splink_json["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            for which in ("m_probability", "u_probability"):
                if not isinstance(level.get(which), float | int) or level[which] <= 0:
                    _LOG.info("level %r: %s not observed in training; using %s",
                              level.get("label_for_charts"), which, UNOBSERVED_PROBABILITY)
                    level[which] = UNOBSERVED_PROBABILITY
    return splink_json


def _probability(value: object, label: str, which: str) -> float:
    if isinstance(value, str):  # Splink's "level not observed" marker
        return UNOBSERVED_PROBABILITY
    if value is None:
        raise ModelError(f"level {label!r} has no trained {which} probability")
    return float(value)  # type: ignore[arg-type]


def compile_splink_model(splink_json: dict[str, Any]) -> CompiledModel:
    """A `CompiledModel` from Splink's model JSON, computing weights as Splink does."""
    comparisons = []
    for definition, comparison in zip(COMPARISONS, splink_json["comparisons"], strict=True):
        levels = []
        for level, exported in zip(definition.levels, comparison["comparison_levels"],
                                   strict=True):
            if exported.get("label_for_charts") != level.label:
                raise ModelError(f"Splink level {exported.get('label_for_charts')!r} is not "
                                 f"{level.label!r}; the model was trained on other levels")
            if exported.get("is_null_level"):
                levels.append(LevelParameters(level.label, None, None, 0.0))
                continue
            m = _probability(exported.get("m_probability"), level.label, "m")
            u = _probability(exported.get("u_probability"), level.label, "u")
            if m <= 0 or u <= 0:
                raise ModelError(f"level {level.label!r} of {definition.name} has m={m}, "
                                 f"u={u}; its weight would be infinite")
            levels.append(LevelParameters(level.label, m, u, math.log2(m / u)))
        comparisons.append(ComparisonParameters(definition.name, tuple(levels)))
    return CompiledModel(float(splink_json["probability_two_random_records_match"]),
                         tuple(comparisons))


def splink_predict(records: Iterable[tuple[str, NormalisedIdentity]],
                   splink_json: dict[str, Any],
                   threshold_match_weight: float | None = None,
                   ) -> list[tuple[str, str, float]]:
    """Splink alone: its blocking and SQL scoring. (record_key_l, record_key_r, weight)."""
    linker = _linker(splink_table(records), splink_json)
    frame = linker.inference.predict(threshold_match_weight=threshold_match_weight)
    relation = frame.as_duckdbpyrelation().select("record_key_l, record_key_r, match_weight")
    return [(str(a), str(b), float(w)) for a, b, w in relation.fetchall()]
