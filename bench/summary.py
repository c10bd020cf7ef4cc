"""Pure helpers for benchmark reports: percentiles, targets met or missed, a summary table.

No I/O and no timing here, so the arithmetic a report rests on is unit-tested
(tests/unit/bench/test_summary.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The value at quantile `q` (0..1) of `values`, nearest rank, no interpolation: the
    p99 of 1,000 latencies is the 991st smallest. Raises on an empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is not between 0 and 1")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def number(value: float, unit: str = "") -> str:
    """A figure as a person reads it: thousands separated, one decimal below 100 (two for
    a ratio below 10), none for a whole number."""
    if value == int(value) or abs(value) >= 100:
        text = f"{value:,.0f}"
    elif unit == "x" and abs(value) < 10:
        text = f"{value:.2f}"
    else:
        text = f"{value:,.1f}"
    return f"{text} {unit}" if unit and unit != "x" else f"{text}{unit}"


@dataclass(frozen=True)
class Target:
    """A goal: below `limit` (or at most, unless `strict`), or at least `limit` when
    `higher_is_better`."""

    limit: float
    unit: str = ""
    higher_is_better: bool = False
    strict: bool = False

    def text(self) -> str:
        sign = ">=" if self.higher_is_better else ("<" if self.strict else "<=")
        return f"{sign} {number(self.limit, self.unit)}"

    def met(self, measured: float) -> bool:
        if self.higher_is_better:
            return measured >= self.limit
        return measured < self.limit if self.strict else measured <= self.limit

    def verdict(self, measured: float | None) -> str:
        """'met', or 'missed by <how much> (<ratio>)', or 'not measured'."""
        if measured is None:
            return "not measured"
        if self.met(measured):
            return "met"
        if self.higher_is_better:
            share = measured / self.limit if self.limit else 0.0
            return (f"missed by {number(self.limit - measured, self.unit)} "
                    f"({share:.0%} of the target)")
        if self.unit == "x" or not self.limit:
            return f"missed by {number(measured - self.limit, self.unit)}"
        return (f"missed by {number(measured - self.limit, self.unit)} "
                f"({measured / self.limit:.1f}x the target)")


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    floor: str
    target: str
    verdict: str


def row(figure: str, measured: float | None, target: Target, floor: str = "-",
        measured_text: str | None = None) -> Row:
    """A summary row; `measured` None when the phase did not run or nothing arrived."""
    shown = measured_text or ("-" if measured is None else number(measured, target.unit))
    return Row(figure, shown, floor, target.text(), target.verdict(measured))


def info(figure: str, measured: str, floor: str = "-") -> Row:
    """A row without a target of its own (a floor, a calibration figure)."""
    return Row(figure, measured, floor, "-", "-")


HEADER = Row("figure", "measured", "floor, same run", "target", "met / missed")


def render(rows: Sequence[Row]) -> list[str]:
    """The rows as an aligned text table, header first."""
    table = [HEADER, *rows]
    widths = [max(len(getattr(r, name)) for r in table)
              for name in ("figure", "measured", "floor", "target")]
    lines = []
    for n, r in enumerate(table):
        cells = (r.figure, r.measured, r.floor, r.target)
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
                     + "  " + r.verdict)
        if n == 0:
            lines.append("-" * len(lines[0]))
    return lines
