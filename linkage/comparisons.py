"""The comparison levels of the Fellegi-Sunter model, defined once for Splink and the stream.

Each `Comparison` is an ordered list of `Level`s; a pair of records falls in the first
level whose condition holds (Splink's rule). `splink_model` turns these definitions into
Splink comparison levels for training; `gamma` evaluates the same conditions in Python
for the compiled scorer. Levels are described by labels, never by values, so evidence
built from them carries no personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from linkage.identity import NormalisedIdentity
from linkage.similarity import damerau_levenshtein, jaro_winkler_similarity

LevelKind = Literal[
    "null", "exact", "reversed", "jaro_winkler", "damerau_levenshtein",
    "dob_day_month_swapped", "same_year", "else",
]


@dataclass(frozen=True, slots=True)
class Level:
    label: str
    """Stable name of the level, used in evidence ("exact", "nickname", "typo"...)."""
    kind: LevelKind
    column: str = ""
    other: str = ""
    """For `reversed`: the column `column` is compared with, crosswise."""
    threshold: float = 0.0


@dataclass(frozen=True, slots=True)
class Comparison:
    name: str
    """The field this comparison reports evidence for (`given_name`, `dob`...)."""
    levels: tuple[Level, ...]


def _name_levels(column: str, other: str, formal: str | None) -> tuple[Level, ...]:
    levels = [Level("missing", "null", column), Level("exact", "exact", column)]
    if formal:
        levels.append(Level("nickname", "exact", formal))
    levels += [
        Level("swapped with other name", "reversed", column, other),
        Level("very similar", "jaro_winkler", column, threshold=0.92),
        Level("similar", "jaro_winkler", column, threshold=0.8),
        Level("different", "else"),
    ]
    return tuple(levels)


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("given_name", _name_levels("given", "family", "given_formal")),
    Comparison("family_name", _name_levels("family", "given", None)),
    Comparison("dob", (
        Level("missing", "null", "dob"),
        Level("exact", "exact", "dob"),
        Level("day and month swapped", "dob_day_month_swapped", "dob"),
        Level("one typo or transposition", "damerau_levenshtein", "dob", threshold=1),
        Level("same year", "same_year", "dob"),
        Level("different", "else"),
    )),
    Comparison("sex", (
        Level("missing", "null", "sex"),
        Level("exact", "exact", "sex"),
        Level("different", "else"),
    )),
    Comparison("street_address", (
        Level("missing", "null", "street"),
        Level("exact", "exact", "street"),
        Level("similar", "jaro_winkler", "street", threshold=0.88),
        Level("different", "else"),
    )),
    Comparison("zip", (
        Level("missing", "null", "zip"),
        Level("exact", "exact", "zip"),
        Level("different", "else"),
    )),
    Comparison("phone", (
        Level("missing", "null", "phone"),
        Level("exact", "exact", "phone"),
        Level("different", "else"),
    )),
)
"""The model's comparisons. Changing them means retraining (see `retrain`)."""


def _holds(level: Level, left: NormalisedIdentity, right: NormalisedIdentity) -> bool:
    kind = level.kind
    if kind == "else":
        return True
    lv: str | None = getattr(left, level.column)
    rv: str | None = getattr(right, level.column)
    if kind == "null":
        return lv is None or rv is None
    if kind == "reversed":
        lo: str | None = getattr(left, level.other)
        ro: str | None = getattr(right, level.other)
        return lv is not None and lv == ro and rv is not None and rv == lo
    if lv is None or rv is None:  # SQL: a comparison with NULL is never true
        return False
    if kind == "exact":
        return lv == rv
    if kind == "jaro_winkler":
        return jaro_winkler_similarity(lv, rv) >= level.threshold
    if kind == "damerau_levenshtein":
        return damerau_levenshtein(lv, rv) <= level.threshold
    if kind == "dob_day_month_swapped":
        return lv[:4] == rv[:4] and lv[4:6] == rv[6:8] and lv[6:8] == rv[4:6]
    if kind == "same_year":
        return lv[:4] == rv[:4]
    raise AssertionError(f"unknown level kind {kind}")


def gamma(comparison: Comparison, left: NormalisedIdentity, right: NormalisedIdentity) -> int:
    """Index of the first level of `comparison` that the pair falls in."""
    for index, level in enumerate(comparison.levels):
        if _holds(level, left, right):
            return index
    raise AssertionError(f"comparison {comparison.name} has no else level")
