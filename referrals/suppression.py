"""Small-cell suppression with complementary suppression, for tables with totals.

A table is a set of count cells and a set of **relations**, each saying that one cell
(a total) is the sum of others (its members). Publishing a table publishes every visible
cell and, implicitly, every relation. Suppression:

1. **primary**: every cell with `0 < value < threshold` is hidden;
2. **complementary**: while some hidden cell can be worked out exactly from the visible
   cells and the relations, hide one more cell, chosen among the visible cells of the
   relations in which the exposed cell is the only hidden one (or, when a combination of
   relations exposes it, of any relation that holds it): the one in most such relations,
   then the smallest non-zero one (zeros only when nothing else is left).

"Can be worked out exactly" is decided by linear algebra, not by a rule of thumb: write
each relation as `total - sum(members) = 0`, move the visible cells to the right-hand
side, and a hidden cell is determined exactly when its unit vector lies in the row space
of the hidden part. That catches a lone hidden cell in a row, and also cells given away by
combining relations (a hidden cell shared by a row and a column, each with one other
hidden cell, and so on).

It does not defend against bounds (that counts are never negative, or that one stage of a
funnel cannot exceed the one before): a hidden cell may be known to lie in a range.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)


@dataclass(frozen=True)
class Relation(Generic[C]):
    """`total` equals the sum of `members`."""

    total: C
    members: tuple[C, ...]

    @property
    def cells(self) -> tuple[C, ...]:
        return (self.total, *self.members)


def suppress(values: Mapping[C, int], relations: Sequence[Relation[C]], threshold: int,
             order: Sequence[C]) -> frozenset[C]:
    """The cells to hide. `order` lists every cell; it breaks ties so the result does not
    depend on dict order."""
    rank = {cell: n for n, cell in enumerate(order)}
    hidden = {c for c in order if 0 < values[c] < threshold}
    touching: dict[C, list[Relation[C]]] = {}
    for relation in relations:
        for cell in relation.cells:
            touching.setdefault(cell, []).append(relation)
    while True:
        exposed = determined(hidden, relations, rank)
        if not exposed:
            return frozenset(hidden)
        cell = min(exposed, key=rank.__getitem__)
        # First mend a relation in which the cell is the only hidden one (its total
        # minus the visible cells gives it away); else any relation that holds it.
        around = touching.get(cell, [])
        alone = [r for r in around if sum(c in hidden for c in r.cells) == 1]
        candidates = {c for r in alone or around for c in r.cells if c not in hidden}
        mends = {c: sum(c in r.cells for r in alone) for c in candidates}
        if not candidates:
            # Every neighbour is hidden, yet the cell is exposed through a chain of
            # relations: widen to every visible cell of a relation with a hidden cell.
            candidates = {c for r in relations if hidden & set(r.cells)
                          for c in r.cells if c not in hidden}
        if not candidates:
            return frozenset(hidden)  # nothing is visible: nothing can be worked out
        # The cell that mends the most of those relations; then the smallest.
        hidden.add(min(candidates, key=lambda c: (-mends.get(c, 0), values[c] == 0,
                                                  values[c], rank[c])))


def determined(hidden: set[C], relations: Sequence[Relation[C]],
               rank: Mapping[C, int]) -> set[C]:
    """The hidden cells whose value follows from the visible cells and the relations."""
    columns = sorted(hidden, key=rank.__getitem__)
    index = {cell: n for n, cell in enumerate(columns)}
    rows: list[list[Fraction]] = []
    for relation in relations:
        row = [Fraction(0)] * len(columns)
        if relation.total in index:
            row[index[relation.total]] += 1
        for member in relation.members:
            if member in index:
                row[index[member]] -= 1
        if any(row):
            rows.append(row)
    reduced = _row_reduce(rows, len(columns))
    found: set[C] = set()
    for row in reduced:
        nonzero = [n for n, v in enumerate(row) if v]
        if len(nonzero) == 1:
            found.add(columns[nonzero[0]])
    return found


def _row_reduce(rows: list[list[Fraction]], width: int) -> list[list[Fraction]]:
    """Reduced row echelon form: a cell's unit vector is in the row space exactly when
    one of these rows is that unit vector."""
    rows = [r[:] for r in rows]
    pivot_row = 0
    for col in range(width):
        pivot = next((r for r in range(pivot_row, len(rows)) if rows[r][col]), None)
        if pivot is None:
            continue
        rows[pivot_row], rows[pivot] = rows[pivot], rows[pivot_row]
        lead = rows[pivot_row][col]
        rows[pivot_row] = [v / lead for v in rows[pivot_row]]
        for r in range(len(rows)):
            if r != pivot_row and rows[r][col]:
                factor = rows[r][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[pivot_row],
                                                          strict=True)]
        pivot_row += 1
        if pivot_row == len(rows):
            break
    return rows[:pivot_row]
