"""The table of audit records, defined once for both places that keep one: the embedded
store (`audit.db`) and the Kafka backend's local index (`audit-index.db`). Its columns,
its indexes, and the SQL that reads it (filters, keyset pages, counts, the subject
lookup) are written here only; each keeper adds its own columns after the shared ones.

Every column a read uses is hashed content of the record (`COLUMNS`), or derived from
it and checked by the verifiers: `detail_tail` (the record's detail is `detail` followed
by that shared tail; the hash covers the whole) and `subject_bucket` (`seq >> 12` when
`subject` is set, else NULL). Indexes are SQLite's own copies of those columns.

Pages run in time order (`at_ms`, then `seq`), which is what a person reading the log
expects and what the indexes below serve without sorting: each equality filter has an
index `(column, at_ms)`, whose entries are ordered by `(column, at_ms, seq)`. A page is
a keyset seek from the previous page's last record, so page 1,000 costs what page 1
does. Counting reads the daily counts (`broker.audit.record_counts`) for whole days, and
for the partial days at the ends of a period `audit_by_time`, which holds the attributes
counts mostly group by, so it rarely reads the records themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broker.audit.records import COLUMNS
from broker.audit.store import AuditFilter, CountColumn

TABLE = "audit_records"
BUCKET_BITS = 12
"""The subject index is kept per bucket of 4,096 consecutive records: (bucket, subject).
A plain index on subject takes one random page write per record, as pseudonyms are
random, which cut appends by two thirds; per bucket, a batch only touches the few pages
of the current bucket. A lookup seeks once per bucket: about 2,500 seeks (~15 ms) for
10 million records."""
READ_COLUMNS = (*COLUMNS, "detail_tail")
"""What is read back for a record: its hashed attributes and where its detail ends."""
TAIL = len(COLUMNS)
"""Index of `detail_tail` in a row read with `READ_COLUMNS`."""
TIME_INDEX_COLUMNS = frozenset({"at_ms", "kind", "outcome", "agreement", "recipient"})
"""What `audit_by_time` holds beside `seq`: counts and filters over these alone never
read the table."""
_BY_COLUMN = {"recipient": "audit_by_recipient", "agreement": "audit_by_agreement",
              "subscription": "audit_by_subscription", "kind": "audit_by_kind"}
_INDEX_ORDER = ("subscription", "recipient", "agreement")
"""Which index a page uses when several filters are set: the most selective first."""


def table_sql(tail_type: str, extra_columns: Sequence[str] = ()) -> str:
    """CREATE statements for the records table and its indexes. `tail_type` is how the
    keeper names a shared tail (INTEGER id or TEXT digest); `extra_columns` are its own
    column definitions, after the shared ones."""
    extra = "".join(f",\n    {column}" for column in extra_columns)
    return f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    subject TEXT,
    recipient TEXT,
    source TEXT,
    agreement TEXT,
    subscription TEXT,
    outcome TEXT,
    event_id TEXT,
    decision_id TEXT,
    actor TEXT,
    detail TEXT NOT NULL,  -- canonical JSON of the detail, or its head: see detail_tail
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    detail_tail {tail_type},  -- when set, the detail is `detail` + that shared tail
    -- subject_bucket: seq >> {BUCKET_BITS} when subject is set (see BUCKET_BITS)
    subject_bucket INTEGER{extra}
);
{INDEXES_SQL}"""


INDEXES_SQL = f"""
CREATE INDEX IF NOT EXISTS audit_by_subject ON {TABLE} (subject_bucket, subject)
    WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_recipient ON {TABLE} (recipient, at_ms)
    WHERE recipient IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_agreement ON {TABLE} (agreement, at_ms)
    WHERE agreement IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_subscription ON {TABLE} (subscription, at_ms)
    WHERE subscription IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_kind ON {TABLE} (kind, at_ms);
CREATE INDEX IF NOT EXISTS audit_by_time ON {TABLE} (at_ms, kind, outcome, agreement, recipient);
"""
"""All of them grow at their ends (at_ms rises with seq), so appends stay cheap."""


def insert_sql(extra_columns: Sequence[str] = ()) -> str:
    """INSERT of one row: `READ_COLUMNS`, `subject_bucket`, then `extra_columns`."""
    names = [*READ_COLUMNS, "subject_bucket", *extra_columns]
    return (f"INSERT INTO {TABLE} ({', '.join(names)}) "  # noqa: S608 - fixed names
            f"VALUES ({', '.join('?' * len(names))})")


def statements(script: str) -> list[str]:
    """The statements of a script of ours (no `;` inside them), to run one by one inside
    a transaction of the caller's (`executescript` would commit it)."""
    return [statement for statement in script.split(";") if statement.strip()]


def subject_bucket(seq: int, subject: str | None) -> int | None:
    """The `subject_bucket` a record must have."""
    return None if subject is None else seq >> BUCKET_BITS


@dataclass(frozen=True, slots=True)
class Query:
    """SQL and its parameters."""

    sql: str
    params: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class RecordSql:
    """Builds the SQL that reads the records table, for one keeper's column list."""

    columns: tuple[str, ...] = READ_COLUMNS
    """What a read returns per record (a keeper may add its own columns at the end)."""

    def _from(self, where: AuditFilter | None, index: str | None) -> tuple[str, list[Any]]:
        """FROM … WHERE … selecting the filter's records (the subject through its index),
        and the parameters; the WHERE clause always exists, so callers add with AND."""
        clauses, params = _conditions(where)
        subject = None if where is None else where.subject
        if subject is None:
            hint = f" INDEXED BY {index}" if index else ""
            return f" FROM {TABLE} r{hint} WHERE 1" + clauses, params
        # Seek the subject once per bucket, from the first to the last.
        return (
            " FROM (WITH RECURSIVE buckets(bucket) AS (SELECT 0 UNION ALL SELECT bucket + 1 "  # noqa: S608
            f"FROM buckets WHERE bucket < (SELECT max(seq) FROM {TABLE}) >> {BUCKET_BITS}) "
            f"SELECT r.* FROM buckets JOIN {TABLE} r INDEXED BY audit_by_subject "
            "ON r.subject_bucket = buckets.bucket AND r.subject = ?) r WHERE 1" + clauses,
            [subject, *params],
        )

    def _select(self) -> str:
        return "SELECT " + ", ".join(f"r.{column}" for column in self.columns)

    def page(
        self, where: AuditFilter, after: tuple[int, int] | None, limit: int, newest_first: bool
    ) -> Query:
        """One page in (at_ms, seq) order, after the record whose (at_ms, seq) is `after`
        in that order. Asks for `limit` rows; callers ask one more to learn if there are."""
        source, params = self._from(where, _page_index(where))
        keyset = ""
        if after is not None:
            at_ms, seq = after
            if newest_first:
                keyset = " AND r.at_ms <= ? AND (r.at_ms < ? OR r.seq < ?)"
            else:
                keyset = " AND r.at_ms >= ? AND (r.at_ms > ? OR r.seq > ?)"
            params += [at_ms, at_ms, seq]
        direction = " DESC" if newest_first else ""
        return Query(
            self._select() + source + keyset
            + f" ORDER BY r.at_ms{direction}, r.seq{direction} LIMIT ?",
            (*params, limit),
        )

    def stream(self, where: AuditFilter | None, after: int) -> Query:
        """Every matching record with seq > `after`, in seq order (exports)."""
        source, params = self._from(where, None)
        if after > 0:
            source += " AND r.seq > ?"
            params.append(after)
        return Query(self._select() + source + " ORDER BY r.seq", tuple(params))

    def disclosures(self, where: AuditFilter) -> Query:
        """The filter's records in time order, oldest first."""
        source, params = self._from(where, None)
        return Query(self._select() + source + " ORDER BY r.at_ms, r.seq", tuple(params))

    def position(self) -> str:
        """(at_ms, seq) of one record, by seq: where a cursor points."""
        return f"SELECT at_ms, seq FROM {TABLE} WHERE seq = ?"  # noqa: S608 - fixed

    def count(self, where: AuditFilter, by: Sequence[CountColumn]) -> Query:
        """Counts of matching records per combination of `by`, ordered by it."""
        source, params = self._from(where, _count_index(where, by))
        if not by:
            return Query("SELECT count(*)" + source, tuple(params))
        columns = ", ".join(f"r.{column}" for column in by)
        return Query(f"SELECT {columns}, count(*){source} GROUP BY {columns} ORDER BY {columns}",
                     tuple(params))


def _conditions(where: AuditFilter | None) -> tuple[str, list[Any]]:
    """` AND …` conditions for every attribute but the subject, and their parameters."""
    if where is None:
        return "", []
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in where.equalities().items():
        if column != "subject":
            clauses.append(f" AND r.{column} = ?")  # names come from AuditFilter's fields
            params.append(value)
    if where.since_ms is not None:
        clauses.append(" AND r.at_ms >= ?")
        params.append(where.since_ms)
    if where.until_ms is not None:
        clauses.append(" AND r.at_ms < ?")
        params.append(where.until_ms)
    return "".join(clauses), params


def _page_index(where: AuditFilter) -> str | None:
    """The index a page reads, chosen rather than left to SQLite's planner, which has no
    statistics here and may pick one that makes it sort a million rows."""
    if where.subject is not None:
        return None
    equal = where.equalities()
    for column in (*_INDEX_ORDER, "kind"):
        if column in equal:
            return _BY_COLUMN[column]
    return "audit_by_time"


def _count_index(where: AuditFilter, by: Sequence[CountColumn]) -> str | None:
    """The index a count reads: one that holds every attribute it needs, so the table is
    never read, narrowed by an equality filter where one has its own index."""
    if where.subject is not None:
        return None
    used = {*where.equalities(), *by, "at_ms"}
    for column in (*_INDEX_ORDER, "kind"):
        if column in where.equalities() and used <= {column, "at_ms"}:
            return _BY_COLUMN[column]
    return "audit_by_time" if used <= TIME_INDEX_COLUMNS else _page_index(where)
