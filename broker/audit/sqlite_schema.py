"""The SQLite layout of the embedded audit store.

Tables: `audit_records` (defined in `broker.audit.record_table`, shared with the Kafka
index; `detail_tail` is the id of a row of `audit_detail_tails`), `audit_detail_tails`
(shared ends of details), `audit_checkpoints`, and `audit_counts` (daily counts,
`broker.audit.record_counts`). Triggers make the first three append-only against
accidental edits; deliberate tampering that drops them is what verification catches,
including in what is derived from the records (`detail_tail`, `subject_bucket`, the
daily counts).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from broker.audit import plan_table, record_counts, record_table
from broker.audit.errors import AuditStoreNotFoundError
from broker.audit.records import StoredRow
from broker.errors import AuditError

SCHEMA_VERSION = 3
"""1: indexes for pages in seq order. 2: indexes for pages in time order, and daily
counts (`MIGRATIONS[1]`); the records are unchanged. 3: `audit_plans`, where decision
plans are found by digest (`MIGRATIONS[2]`; an older store holds none)."""
WAL_AUTOCHECKPOINT_PAGES = 20_000
"""A commit folds the WAL back into the database itself only past ~80 MB: the store's
`WalCheckpointer` does it from a thread of its own, at most twice a second, so the
router's audit commits do not wait for a fold (each syncs and copies the pages)."""
CACHE_KIB = 65_536
TAIL = record_table.TAIL
INSERT = record_table.insert_sql()
SELECT_CHECKPOINTS = "SELECT number, seq, hash, at_ms, key_id, signature FROM audit_checkpoints"
SELECT_LINKS = (
    f"SELECT {', '.join(record_table.READ_COLUMNS)}, subject_bucket "  # noqa: S608 - fixed
    f"FROM {record_table.TABLE}"
)
"""What verification reads of each record: everything, the derived columns included."""
_PLAN_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS audit_plans_no_update BEFORE UPDATE ON audit_plans
    BEGIN SELECT RAISE(ABORT, 'audit plans are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_plans_no_delete BEFORE DELETE ON audit_plans
    BEGIN SELECT RAISE(ABORT, 'audit plans are append-only'); END;
"""
SCHEMA = (record_table.table_sql("INTEGER") + record_counts.SCHEMA + plan_table.SCHEMA
          + _PLAN_TRIGGERS) + """
CREATE TABLE IF NOT EXISTS audit_detail_tails (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL
);
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
MIGRATIONS = {
    1: """
DROP INDEX IF EXISTS audit_by_recipient;
DROP INDEX IF EXISTS audit_by_recipient_time;
DROP INDEX IF EXISTS audit_by_agreement;
DROP INDEX IF EXISTS audit_by_agreement_time;
DROP INDEX IF EXISTS audit_by_time;
""" + record_table.INDEXES_SQL + record_counts.SCHEMA + ";" + record_counts.FILL,
    2: plan_table.SCHEMA,
}
"""SQL that brings a store from version N to N + 1."""


def well_formed(row: StoredRow) -> bool:
    """Whether a stored row has the types the schema promises (tampering can break them)."""
    return (
        type(row[0]) is int and type(row[2]) is int and type(row[1]) is str
        and type(row[12]) is str and type(row[13]) is bytes and type(row[14]) is bytes
        and all(value is None or type(value) is str for value in row[3:12])
    )


def prepare(conn: sqlite3.Connection, path: Path, create: bool) -> None:
    """Create the schema in a new file (if `create`), or bring an older store up to
    date, one version at a time, each in a transaction. Migrations only rebuild indexes
    (what is recorded never changes), which takes a while, once, for a large store."""
    # Per connection, so set on every open; harmless for readers.
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise AuditError(
            f"{path} was written by a newer Handoff (audit schema {version}); "
            "upgrade before opening it"
        )
    if version == 0:
        if not create:
            raise AuditStoreNotFoundError(f"{path} is not a Handoff audit store")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated meanwhile.
            if conn.execute("PRAGMA user_version").fetchone()[0] == version:
                for statement in record_table.statements(MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version += 1
        if version == 3:
            conn.executescript(_PLAN_TRIGGERS)  # triggers hold `;`: not in a migration
