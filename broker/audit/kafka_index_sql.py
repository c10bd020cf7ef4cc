"""The SQLite layout of the Kafka audit index.

`audit_records` is the records table of `broker.audit.record_table`, as the embedded
store keeps it (with its daily counts, `audit_counts`), with `seq` the record's position
in `_audit` (offset + 1), `detail_tail` the digest of its shared tail (table `tails`),
and two columns of its own: `chain` (a row of `chains`) and `chain_seq`, the seq its hash
covers. `chains` holds each chain's head; `checkpoints` the signed checkpoints;
`progress` how far each topic has been read; `meta` the digest of the first record of
`_audit`, which tells whether the file indexes the log it is pointed at.

The file is a cache: when its layout (`INDEX_VERSION`) is not this one, it is emptied and
rebuilt from Kafka.
"""

from __future__ import annotations

from typing import Any

from broker.audit import plan_table, record_counts, record_table
from broker.audit.errors import AuditFormatError
from broker.audit.kafka_records import ParsedLine

INDEX_VERSION = 3
"""1: table `records` keyed by `pos`. 2: the shared records table. 3: `audit_plans`
(`broker.audit.plan_table`), `seq` a position."""
EXTRA_COLUMNS = ("chain INTEGER NOT NULL", "chain_seq INTEGER NOT NULL")
EXTRA_NAMES = ("chain", "chain_seq")
READ_COLUMNS = (*record_table.READ_COLUMNS, *EXTRA_NAMES)
"""A record as read: the shared columns, then its chain's id and its seq there."""
CHAIN = READ_COLUMNS.index("chain")
SQL = record_table.RecordSql(READ_COLUMNS)
INSERT = (
    f"INSERT INTO audit_records ({', '.join(READ_COLUMNS)}, subject_bucket) "  # noqa: S608
    f"VALUES ({', '.join('?' * (len(READ_COLUMNS) + 1))})"
)
TABLES = ("audit_records", "audit_counts", "audit_plans", "records", "chains", "tails",
          "checkpoints", "progress", "meta")
"""Every table this file holds or held in an earlier layout: what a rebuild drops."""
SCHEMA = record_table.table_sql("TEXT", EXTRA_COLUMNS) + record_counts.SCHEMA + \
    plan_table.SCHEMA + """
CREATE INDEX IF NOT EXISTS audit_by_chain ON audit_records (chain);
CREATE TABLE IF NOT EXISTS chains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    head_seq INTEGER NOT NULL,
    head_hash BLOB NOT NULL
);
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
SELECT_CHECKPOINTS = (
    "SELECT number, seq, hash, at_ms, key_id, signature FROM checkpoints ORDER BY number"
)
HEAD_AT = (
    "SELECT chain_seq, hash FROM audit_records INDEXED BY audit_by_chain "
    "WHERE chain = ? AND seq <= ? ORDER BY seq DESC LIMIT 1"
)
"""A chain's last record at or before a position."""
SELECT_ROWS = (
    f"SELECT {', '.join(READ_COLUMNS)}, subject_bucket FROM audit_records ORDER BY seq"  # noqa: S608
)
"""Every stored column of every record (as `row`), for the verifier's comparison."""


def row(
    position: int, parsed: ParsedLine, reference: tuple[str, int] | None, tail: bytes | None,
    chain_id: int,
) -> tuple[Any, ...]:
    """The row the index keeps for a record that fits its chain, in `READ_COLUMNS`
    order with `subject_bucket` last: what it inserts, and what verification expects."""
    try:
        detail = parsed.detail.decode("utf-8")
        if tail is not None:
            detail = detail[: len(detail) - len(tail.decode("utf-8"))]
    except UnicodeDecodeError as exc:
        raise AuditFormatError("its detail is not valid UTF-8") from exc
    values = parsed.row
    return (position, *values[1:12], detail, values[13], values[14],
            None if reference is None else reference[0], chain_id, parsed.seq,
            record_table.subject_bucket(position, values[3]))
