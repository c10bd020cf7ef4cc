"""The SQLite layout of the Kafka audit index, and the SQL that queries it.

`records` holds one row per indexed record, keyed by its position in `_audit`;
`chains` each chain's head; `tails` the shared ends of details; `checkpoints` the signed
checkpoints; `progress` how far each topic has been read; `meta` the digest of the first
record of `_audit`, which tells whether the file indexes the log it is pointed at.
"""

from __future__ import annotations

from typing import Any

from broker.audit.store import AuditFilter, filter_clauses

BUCKET_BITS = 12
"""The subject index is kept per bucket of 4,096 positions, as in the embedded store
(`sqlite_schema.BUCKET_BITS` explains why)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS chains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    head_seq INTEGER NOT NULL,
    head_hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    pos INTEGER PRIMARY KEY,  -- offset + 1 in the _audit topic
    chain INTEGER NOT NULL,
    seq INTEGER NOT NULL,
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
    detail TEXT NOT NULL,  -- the detail, or its head when detail_tail is set
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    detail_tail TEXT,  -- digest of the shared tail (table tails)
    subject_bucket INTEGER
);
CREATE INDEX IF NOT EXISTS records_by_chain ON records (chain, pos);
CREATE INDEX IF NOT EXISTS records_by_subject ON records (subject_bucket, subject)
    WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_recipient ON records (recipient, at_ms)
    WHERE recipient IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_agreement ON records (agreement, at_ms)
    WHERE agreement IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_time ON records (at_ms);
CREATE TABLE IF NOT EXISTS tails (digest TEXT PRIMARY KEY, text TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    number INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    at_ms INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL,
    chain TEXT
);
CREATE TABLE IF NOT EXISTS progress (topic TEXT PRIMARY KEY, next_offset INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
COLUMNS = (
    "r.pos, c.name, r.seq, r.kind, r.at_ms, r.subject, r.recipient, r.source, r.agreement, "
    "r.subscription, r.outcome, r.event_id, r.decision_id, r.actor, r.detail, r.prev_hash, "
    "r.hash, r.detail_tail"
)
SELECT = f"SELECT {COLUMNS} FROM records r JOIN chains c ON c.id = r.chain"  # noqa: S608
BY_SUBJECT = (
    "WITH RECURSIVE buckets(bucket) AS (SELECT ? UNION ALL SELECT bucket + 1 FROM buckets "  # noqa: S608
    f"WHERE bucket < (SELECT max(pos) FROM records) >> {BUCKET_BITS}) "
    f"SELECT {COLUMNS} FROM buckets JOIN records r INDEXED BY records_by_subject "
    "ON r.subject_bucket = buckets.bucket AND r.subject = ? JOIN chains c ON c.id = r.chain"
)
INSERT = (
    "INSERT INTO records (pos, chain, seq, kind, at_ms, subject, recipient, source, "
    "agreement, subscription, outcome, event_id, decision_id, actor, detail, prev_hash, "
    "hash, detail_tail, subject_bucket) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    "?, ?, ?, ?, ?)"
)
SELECT_CHECKPOINTS = (
    "SELECT number, seq, hash, at_ms, key_id, signature FROM checkpoints ORDER BY number"
)


def select(where: AuditFilter | None, after: int, suffix: str) -> tuple[str, list[Any]]:
    """SQL and parameters selecting matching records after position `after`."""
    clauses, params, subject = filter_clauses(where, table="r.")
    if after > 0:
        clauses.insert(0, "r.pos > ?")
        params.insert(0, after)
    if subject is None:
        return SELECT + (" WHERE " + " AND ".join(clauses) if clauses else "") + suffix, params
    return (
        BY_SUBJECT + "".join(" AND " + clause for clause in clauses) + suffix,
        [(after + 1) >> BUCKET_BITS, subject, *params],
    )
