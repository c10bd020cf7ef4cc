"""`RecordTableReader`: the `AuditReader` reads, answered from a records table.

The embedded store and the Kafka index keep the same table (`broker.audit.record_table`)
and read it the same way; they differ only in how a row becomes a record (where a shared
detail tail is found, whether the record names its chain), which each hands in.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from broker.audit import record_counts
from broker.audit.disclosures import PERMIT, Disclosure, disclosure_from_record
from broker.audit.errors import AuditQueryError
from broker.audit.record_table import RecordSql
from broker.audit.records import AuditKind, AuditRecord
from broker.audit.store import (
    AuditCount,
    AuditFilter,
    AuditPage,
    CountColumn,
    check_count_columns,
    check_page_limit,
)
from broker.errors import AuditError

Row = tuple[Any, ...]
ToRecord = Callable[[sqlite3.Connection, Row], AuditRecord]
Translate = Callable[[sqlite3.Error, str], AuditError]


def _nulls_first(group: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    """Sort key putting groups in SQL's order: NULL first, then text by code point."""
    return tuple((value is not None, value or "") for value in group)


def disclosure_filter(where: AuditFilter) -> AuditFilter:
    """The filter of the accounting of disclosures: permitted decisions about one subject."""
    if where.subject is None:
        raise AuditQueryError("the accounting of disclosures is for one subject: give one")
    for name, value in (("kind", AuditKind.DECISION.value), ("outcome", PERMIT)):
        if getattr(where, name) not in (None, value):
            raise AuditQueryError(f"disclosures are records with {name} {value!r}")
    return dataclasses.replace(where, kind=AuditKind.DECISION.value, outcome=PERMIT)


class RecordTableReader:
    """Reads one records table. `connection` gives this thread's connection for short
    reads; `open_connection` a new one that a stream owns (so a long export neither
    shares a cursor nor holds a lock); `translate` turns SQLite errors into audit errors."""

    def __init__(
        self,
        sql: RecordSql,
        connection: Callable[[], sqlite3.Connection],
        open_connection: Callable[[], sqlite3.Connection],
        to_record: ToRecord,
        translate: Translate,
    ) -> None:
        self._sql = sql
        self._connection = connection
        self._open = open_connection
        self._to_record = to_record
        self._translate = translate

    def page(
        self, where: AuditFilter, cursor: int | None, limit: int, newest_first: bool
    ) -> AuditPage:
        """See `AuditReader.page`."""
        check_page_limit(limit)
        if cursor is not None and (type(cursor) is not int or cursor < 0):
            raise AuditQueryError("the cursor must be a seq from an earlier page")
        try:
            conn = self._connection()
            after = None
            if cursor:
                found = conn.execute(self._sql.position(), (cursor,)).fetchone()
                if found is None:
                    raise AuditQueryError(f"the cursor names no record (seq {cursor})")
                after = (found[0], found[1])
            query = self._sql.page(where, after, limit + 1, newest_first)
            rows = conn.execute(query.sql, query.params).fetchall()
            records = tuple(self._to_record(conn, row) for row in rows[:limit])
        except sqlite3.Error as exc:
            raise self._translate(exc, "querying") from exc
        return AuditPage(records, records[-1].seq if records else cursor, len(rows) > limit)

    def iter_records(self, where: AuditFilter | None, after: int) -> Iterator[AuditRecord]:
        """See `AuditReader.iter_records`; the stream has a connection of its own, whose
        snapshot covers every row it yields and the tails those rows name."""
        query = self._sql.stream(where, after)
        return self._stream(query.sql, query.params)

    def _stream(self, sql: str, params: Sequence[Any]) -> Iterator[AuditRecord]:
        conn = self._open()
        try:
            for row in conn.execute(sql, params):
                yield self._to_record(conn, row)
        except sqlite3.Error as exc:
            raise self._translate(exc, "reading records") from exc
        finally:
            conn.close()

    def count(self, where: AuditFilter, by: Sequence[str]) -> tuple[AuditCount, ...]:
        """See `AuditReader.count`. Whole days come from the daily counts, the partial
        days at the ends of the period (or a subject's records) from the records; all in
        one snapshot."""
        columns: tuple[CountColumn, ...] = check_count_columns(by)
        totals: Counter[tuple[Any, ...]] = Counter()
        try:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                parts = [where]
                if record_counts.can_answer(where, columns):
                    first_day, end_day, parts = record_counts.split(where)
                    if end_day > first_day:
                        totals += record_counts.sum_days(conn, where, columns, first_day,
                                                         end_day)
                for part in parts:
                    query = self._sql.count(part, columns)
                    for row in conn.execute(query.sql, query.params):
                        totals[tuple(row[:-1])] += int(row[-1])
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._translate(exc, "counting") from exc
        if not columns:
            return (AuditCount((), totals[()]),)
        return tuple(AuditCount(group, totals[group]) for group in sorted(
            (group for group in totals if totals[group]), key=_nulls_first))

    def disclosures(self, where: AuditFilter) -> list[Disclosure]:
        """See `AuditReader.disclosures`."""
        query = self._sql.disclosures(disclosure_filter(where))
        try:
            conn = self._connection()
            rows = conn.execute(query.sql, query.params).fetchall()
            return [disclosure_from_record(self._to_record(conn, row)) for row in rows]
        except sqlite3.Error as exc:
            raise self._translate(exc, "reading disclosures") from exc
