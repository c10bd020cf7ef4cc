"""The SQLite layout of the audit store, and the SQL that reads it.

Tables: `audit_records` (one row per record; `detail_tail` and `subject_bucket` are
storage aids outside the hashed content), `audit_detail_tails` (shared ends of details),
`audit_checkpoints`. Triggers make all three append-only against accidental edits.
"""

from __future__ import annotations

from typing import Any

from broker.audit.records import COLUMNS, StoredRow
from broker.audit.store import AuditFilter, filter_clauses

SCHEMA_VERSION = 1
WAL_AUTOCHECKPOINT_PAGES = 10_000
"""Fold the WAL back into the database every ~40 MB rather than SQLite's default 4 MB:
each fold syncs, and index pages changed by many batches are then written once."""
CACHE_KIB = 65_536
STORED_COLUMNS = (*COLUMNS, "detail_tail")
TAIL = 15
"""Index of `detail_tail` in a selected row; the 15 before it are `COLUMNS`."""
SELECT = f"SELECT {', '.join(STORED_COLUMNS)} FROM audit_records"  # noqa: S608 - fixed
INSERT = (
    f"INSERT INTO audit_records ({', '.join(STORED_COLUMNS)}, subject_bucket) "  # noqa: S608
    f"VALUES ({', '.join('?' * (len(STORED_COLUMNS) + 1))})"
)
BUCKET_BITS = 12
"""The subject index is kept per bucket of 4,096 consecutive records: (bucket, subject).
A plain index on subject takes one random page write per record, as pseudonyms are
random, which cut appends by two thirds; per bucket, a batch only touches the few pages
of the current bucket. A lookup seeks once per bucket: about 2,500 seeks (~15 ms) for
10 million records."""
BY_SUBJECT = (
    "WITH RECURSIVE buckets(bucket) AS (SELECT ? UNION ALL SELECT bucket + 1 FROM buckets "  # noqa: S608
    f"WHERE bucket < (SELECT max(seq) FROM audit_records) >> {BUCKET_BITS}) "
    f"SELECT {', '.join(STORED_COLUMNS)} FROM buckets "
    "JOIN audit_records INDEXED BY audit_by_subject "
    "ON subject_bucket = buckets.bucket AND subject = ?"
)
SELECT_CHECKPOINTS = "SELECT number, seq, hash, at_ms, key_id, signature FROM audit_checkpoints"
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_records (
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
    detail_tail INTEGER,  -- when set, the detail is `detail || audit_detail_tails.text`
    subject_bucket INTEGER  -- seq >> 12 when subject is set: see BUCKET_BITS
);
CREATE TABLE IF NOT EXISTS audit_detail_tails (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL
);
-- seq is the rowid, so each index already orders its matches by seq.
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit_records (subject_bucket, subject)
    WHERE subject IS NOT NULL;
-- Pages of "all about recipient X" come from the first index, "X between two dates"
-- from the second. Both grow at their ends (at_ms rises with seq), so they are cheap.
CREATE INDEX IF NOT EXISTS audit_by_recipient ON audit_records (recipient)
    WHERE recipient IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_recipient_time ON audit_records (recipient, at_ms)
    WHERE recipient IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_agreement ON audit_records (agreement)
    WHERE agreement IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_agreement_time ON audit_records (agreement, at_ms)
    WHERE agreement IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_records (at_ms);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    number INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    at_ms INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL
);
-- Guards against accidental edits; tampering that drops them is what the chain catches.
CREATE TRIGGER IF NOT EXISTS audit_records_no_update BEFORE UPDATE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_records_no_delete BEFORE DELETE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_detail_tails_no_update BEFORE UPDATE ON audit_detail_tails
    BEGIN SELECT RAISE(ABORT, 'audit detail tails are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_detail_tails_no_delete BEFORE DELETE ON audit_detail_tails
    BEGIN SELECT RAISE(ABORT, 'audit detail tails are append-only'); END;
"""


def well_formed(row: StoredRow) -> bool:
    """Whether a stored row has the types the schema promises (tampering can break them)."""
    return (
        type(row[2]) is int and type(row[1]) is str and type(row[12]) is str
        and type(row[13]) is bytes and type(row[14]) is bytes
        and all(value is None or type(value) is str for value in row[3:12])
    )


def select_rows(
    where: AuditFilter | None, from_seq: int, order_limit: str = " ORDER BY seq"
) -> tuple[str, list[Any]]:
    """SQL and parameters selecting stored rows that match, from `from_seq` on."""
    clauses, params, subject = filter_clauses(where)
    if from_seq > 1:
        clauses.insert(0, "seq >= ?")
        params.insert(0, from_seq)
    if subject is None:
        where_sql = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return SELECT + where_sql + order_limit, params
    where_sql = "".join(" AND " + clause for clause in clauses)
    return (
        BY_SUBJECT + where_sql + order_limit,
        [max(from_seq, 1) >> BUCKET_BITS, subject, *params],
    )
