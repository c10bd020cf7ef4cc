"""Daily counts of audit records, so counting a period costs its days, not its records.

`audit_counts` holds, per UTC day and per combination of the attributes records are
counted by, how many records there are. Keepers of a records table (the embedded store,
the Kafka index) add to it in the transaction that inserts the records; a count over a
period sums the whole days inside it from here and counts the partial days at its ends
from the records. The table is derived from hashed content, so verification recomputes
it while walking the records and names any row that differs.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from broker.audit.record_table import TABLE
from broker.audit.store import COUNT_COLUMNS, AuditFilter, CountColumn

DAY_MS = 86_400_000
COUNTS_TABLE = "audit_counts"
CountKey = tuple[Any, ...]
"""(day, kind, outcome, agreement, recipient, source, subscription)."""
_KEY_COLUMNS = ("day", *COUNT_COLUMNS)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {COUNTS_TABLE} (
    day INTEGER NOT NULL,  -- at_ms // {DAY_MS} (UTC days since 1970-01-01)
    kind TEXT NOT NULL,
    outcome TEXT,
    agreement TEXT,
    recipient TEXT,
    source TEXT,
    subscription TEXT,
    records INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS {COUNTS_TABLE}_by_day ON {COUNTS_TABLE} (day);
"""
FILL = (
    f"INSERT INTO {COUNTS_TABLE} SELECT at_ms / {DAY_MS}, {', '.join(COUNT_COLUMNS)}, "  # noqa: S608
    f"count(*) FROM {TABLE} GROUP BY 1, {', '.join(COUNT_COLUMNS)}"
)
"""Fills the table from records already stored (an upgrade)."""
_MATCH = " AND ".join(f"{column} IS ?" for column in _KEY_COLUMNS)
_ADD = f"UPDATE {COUNTS_TABLE} SET records = records + ? WHERE {_MATCH}"  # noqa: S608
_NEW = (f"INSERT INTO {COUNTS_TABLE} ({', '.join(_KEY_COLUMNS)}, records) "  # noqa: S608
        f"VALUES ({', '.join('?' * (len(_KEY_COLUMNS) + 1))})")


def count_key(kind: str, at_ms: int, outcome: str | None, agreement: str | None,
              recipient: str | None, source: str | None, subscription: str | None
              ) -> CountKey:
    """The row of `audit_counts` a record adds one to."""
    return (at_ms // DAY_MS, kind, outcome, agreement, recipient, source, subscription)


def key_of_row(row: Sequence[Any]) -> CountKey:
    """`count_key` of a row in `record_table.READ_COLUMNS` order."""
    return (row[2] // DAY_MS, row[1], row[8], row[6], row[4], row[5], row[7])


def add(conn: sqlite3.Connection, keys: Iterable[CountKey]) -> None:
    """Count records in, inside the caller's write transaction (the only writer then)."""
    for key, records in Counter(keys).items():
        if conn.execute(_ADD, (records, *key)).rowcount == 0:
            conn.execute(_NEW, (*key, records))


def stored(conn: sqlite3.Connection) -> Counter[CountKey]:
    """Every row of the table, as a Counter (rows of one key summed)."""
    found: Counter[CountKey] = Counter()
    for *key, records in conn.execute(
            f"SELECT {', '.join(_KEY_COLUMNS)}, records FROM {COUNTS_TABLE}"):  # noqa: S608
        found[tuple(key)] += records
    return found


def first_difference(expected: Counter[CountKey], found: Counter[CountKey]) -> str | None:
    """Where the stored counts differ from the records', for people; None if they agree."""
    for key in sorted(set(expected) | set(found), key=repr):
        if expected[key] != found[key]:
            day, *attributes = key
            named = ", ".join(f"{name} {value}" for name, value in
                              zip(COUNT_COLUMNS, attributes, strict=True) if value is not None)
            return (f"the daily count of day {day} ({named}) says {found[key]} records where "
                    f"there are {expected[key]}: altered outside the chain")
    return None


def can_answer(where: AuditFilter, by: Sequence[CountColumn]) -> bool:
    """Whether daily counts hold what `count(where, by)` needs (everything but a subject)."""
    return where.subject is None


def sum_days(conn: sqlite3.Connection, where: AuditFilter, by: Sequence[CountColumn],
             first_day: int, end_day: int) -> Counter[tuple[Any, ...]]:
    """Counts per `by` group of the whole days first_day … end_day - 1."""
    clauses = ["day >= ?", "day < ?"]
    params: list[Any] = [first_day, end_day]
    for column, value in where.equalities().items():
        clauses.append(f"{column} = ?")  # names come from AuditFilter's fields
        params.append(value)
    groups = ", ".join(by) if by else "NULL"
    sql = (f"SELECT {groups}, sum(records) FROM {COUNTS_TABLE} "  # noqa: S608 - fixed names
           f"WHERE {' AND '.join(clauses)} GROUP BY {groups}")
    found: Counter[tuple[Any, ...]] = Counter()
    for *group, records in conn.execute(sql, params):
        found[tuple(group) if by else ()] += records
    return found


def split(where: AuditFilter) -> tuple[int, int, list[AuditFilter]]:
    """(first whole day, day after the last whole day, filters of the partial days at the
    ends) of a filter's period."""
    since, until = where.since_ms, where.until_ms
    first_day = 0 if since is None else -(-since // DAY_MS)
    end_day = 2**62 if until is None else until // DAY_MS
    if end_day <= first_day:   # within one day: no whole day
        return first_day, first_day, [where]
    edges = []
    if since is not None and since < first_day * DAY_MS:
        edges.append(_period(where, since, first_day * DAY_MS))
    if until is not None and until > end_day * DAY_MS:
        edges.append(_period(where, end_day * DAY_MS, until))
    return first_day, end_day, edges


def _period(where: AuditFilter, since_ms: int, until_ms: int) -> AuditFilter:
    return AuditFilter(**{**{name: getattr(where, name) for name in where.equalities()},
                          "since_ms": since_ms, "until_ms": until_ms})
