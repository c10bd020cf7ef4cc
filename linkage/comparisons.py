"""The comparison levels of the Fellegi-Sunter model, defined once for Splink and the stream.

Each `Comparison` is an ordered list of `Level`s; a pair of records falls in the first
level whose condition holds (Splink's rule). `splink_model` turns these definitions into
Splink comparison levels for training; `gamma` evaluates the same conditions in Python
for the compiled scorer. Levels are described by labels, never by values, so evidence
built from them carries no personal data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from linkage.identity import NormalisedIdentity
from linkage.similarity import damerau_levenshtein, jaro_winkler_similarity, within_one_edit

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


Gamma = Callable[[NormalisedIdentity, NormalisedIdentity], int]


def compile_gamma(comparison: Comparison) -> Gamma:
    """A function giving the index of the first level a pair falls in, built once.

    Null levels test the level's column; the rest follow SQL semantics, where a
    comparison with NULL is never true. Jaro-Winkler is computed at most once per pair
    even when several levels test it at different thresholds.
    """
    levels = comparison.levels
    if levels[-1].kind != "else":
        raise AssertionError(f"comparison {comparison.name} has no else level")
    null_column = levels[0].column if levels[0].kind == "null" else None
    body = levels[1:-1] if null_column else levels[:-1]
    offset = 1 if null_column else 0
    else_index = len(levels) - 1

    def gamma_of(left: NormalisedIdentity, right: NormalisedIdentity) -> int:
        if null_column is not None and (getattr(left, null_column) is None
                                        or getattr(right, null_column) is None):
            return 0
        similarity = -1.0
        for index, level in enumerate(body, offset):
            kind = level.kind
            lv = getattr(left, level.column)
            rv = getattr(right, level.column)
            if kind == "reversed":
                lo = getattr(left, level.other)
                ro = getattr(right, level.other)
                if lv is not None and lv == ro and rv is not None and rv == lo:
                    return index
                continue
            if lv is None or rv is None:
                continue
            if kind == "exact":
                if lv == rv:
                    return index
            elif kind == "jaro_winkler":
                if similarity < 0:
                    similarity = jaro_winkler_similarity(lv, rv)
                if similarity >= level.threshold:
                    return index
            elif kind == "damerau_levenshtein":
                if (within_one_edit(lv, rv) if level.threshold == 1
                        else damerau_levenshtein(lv, rv) <= level.threshold):
                    return index
            elif kind == "dob_day_month_swapped":
                if lv[:4] == rv[:4] and lv[4:6] == rv[6:8] and lv[6:8] == rv[4:6]:
                    return index
            elif kind == "same_year":
                if lv[:4] == rv[:4]:
                    return index
            else:
                raise AssertionError(f"unknown level kind {kind}")
        return else_index

    if any(level.kind in ("null", "else") for level in body):
        raise AssertionError(f"{comparison.name}: null and else levels go first and last")
    if len({lv.column for lv in body if lv.kind == "jaro_winkler"}) > 1:
        raise AssertionError(f"{comparison.name}: one Jaro-Winkler column per comparison")
    return gamma_of


def gamma(comparison: Comparison, left: NormalisedIdentity, right: NormalisedIdentity) -> int:
    """Index of the first level of `comparison` that the pair falls in."""
    return compile_gamma(comparison)(left, right)
