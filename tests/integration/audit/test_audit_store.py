"""SqliteAuditStore: chaining, persistence, storage, upgrades, and no raw identifiers.
What it answers to readers is the contract of tests/contract/test_audit_reader.py."""

from __future__ import annotations

import io
import json
import sqlite3
import threading

import pytest

from broker.audit import (
    AuditEntry,
    AuditEntryError,
    AuditFilter,
    AuditStore,
    AuditStoreNotFoundError,
    SqliteAuditStore,
    export_jsonl,
    verify,
)
from broker.audit.paths import audit_db_path


def test_sqlite_store_implements_the_port(store):
    assert isinstance(store, AuditStore)


def test_append_numbers_and_chains_records(store, decision):
    first = store.append([decision(n=0), decision(n=1)])
    second = store.append([decision(n=2)])
    records = [*first, *second]
    assert [record.seq for record in records] == [1, 2, 3]
    assert records[0].prev_hash == "00" * 32
    assert records[1].prev_hash == records[0].hash
    assert records[2].prev_hash == records[1].hash
    assert all(record.computed_hash() == record.hash for record in records)
    assert store.head() == (3, records[2].hash)


def test_empty_store_has_a_genesis_head(store):
    assert store.head() == (0, "00" * 32)
    assert store.append([]) == []


def test_records_survive_reopening(data_dir, store, decision):
    appended = store.append([decision(n=n) for n in range(5)])
    store.close()
    with SqliteAuditStore(audit_db_path(data_dir), create=False) as reopened:
        assert list(reopened.iter_records()) == appended
        assert reopened.append([decision(n=5)])[0].seq == 6


def test_a_batch_with_a_bad_entry_appends_nothing(store, decision):
    store.append([decision(n=0)])
    bad = decision(n=2, detail={"weight": float("nan")})
    with pytest.raises(AuditEntryError):
        store.append([decision(n=1), bad])
    assert store.head()[0] == 1


def test_opening_a_missing_store_without_create_fails(tmp_path):
    with pytest.raises(AuditStoreNotFoundError):
        SqliteAuditStore(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_stored_records_refuse_plain_updates_and_deletes(data_dir, filled):
    conn = sqlite3.connect(audit_db_path(data_dir))
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit_records SET recipient = 'x' WHERE seq = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_records WHERE seq = 1")
    finally:
        conn.close()


def test_concurrent_appends_from_threads_keep_one_sound_chain(store, decision):
    def writer(thread: int) -> None:
        for batch in range(10):
            store.append([decision(f"MPI-{thread}", thread * 1000 + batch * 10 + n)
                          for n in range(10)])

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = verify(store)
    assert report.ok, report.problem
    assert report.records_checked == 400


def test_two_store_instances_on_one_file_keep_one_chain(data_dir, store, decision):
    other = SqliteAuditStore(audit_db_path(data_dir))
    try:
        for n in range(10):
            (store if n % 2 else other).append([decision(n=n)])
    finally:
        other.close()
    assert verify(store).ok
    assert store.head()[0] == 10


def test_raw_subject_id_never_reaches_the_database_files(data_dir, store, decision, pseudonymizer):
    store.append([decision("MPI-0048213", n) for n in range(20)])
    store.close()
    raw = b"MPI-0048213"
    files = [path for path in data_dir.iterdir() if path.name.startswith("audit.db")]
    assert files
    for path in files:
        assert raw not in path.read_bytes(), path.name
    with SqliteAuditStore(audit_db_path(data_dir), create=False) as reopened:
        found = list(reopened.iter_records(
            AuditFilter(subject=pseudonymizer.pseudonym("MPI-0048213"))))
        exported = io.StringIO()
        export_jsonl(reopened, exported)
    assert len(found) == 20
    # Large details are stored compressed, so look at them decompressed as well.
    assert "MPI-0048213" not in exported.getvalue()


def test_raw_subject_id_is_refused_before_it_is_stored(store):
    with pytest.raises(AuditEntryError):
        store.append([AuditEntry(kind="decision", at_ms=1, subject="MPI-0048213")])
    assert store.head()[0] == 0


def test_a_repeated_decision_explanation_is_stored_once(data_dir, store, decision):
    store.append([decision(f"MPI-{n}", n) for n in range(200)])
    conn = sqlite3.connect(audit_db_path(data_dir))
    try:
        own, shared = conn.execute(
            "SELECT sum(length(detail)), count(DISTINCT detail_tail) FROM audit_records"
        ).fetchone()
    finally:
        conn.close()
    whole = sum(len(json.dumps(record.to_dict()["detail"], separators=(",", ":")))
                for record in store.iter_records())
    assert shared == 1
    assert own < whole / 20
    assert [record.detail for record in store.iter_records()] == [
        decision(n=n).detail for n in range(200)
    ]


_VERSION_1_INDEXES = """
DROP TABLE audit_counts;
DROP TABLE audit_plans;
DROP INDEX audit_by_recipient; DROP INDEX audit_by_agreement; DROP INDEX audit_by_time;
DROP INDEX audit_by_subscription; DROP INDEX audit_by_kind;
CREATE INDEX audit_by_recipient ON audit_records (recipient) WHERE recipient IS NOT NULL;
CREATE INDEX audit_by_recipient_time ON audit_records (recipient, at_ms)
    WHERE recipient IS NOT NULL;
CREATE INDEX audit_by_agreement ON audit_records (agreement) WHERE agreement IS NOT NULL;
CREATE INDEX audit_by_agreement_time ON audit_records (agreement, at_ms)
    WHERE agreement IS NOT NULL;
CREATE INDEX audit_by_time ON audit_records (at_ms);
PRAGMA user_version = 1;
"""


def test_a_store_written_by_the_previous_version_is_upgraded_on_opening(
    data_dir, store, decision
):
    store.append([decision(f"MPI-{n % 3}", n, outcome="deny" if n % 4 else "permit")
                  for n in range(30)])
    store.close()
    conn = sqlite3.connect(audit_db_path(data_dir), isolation_level=None)
    conn.executescript(_VERSION_1_INDEXES)
    conn.close()

    with SqliteAuditStore(audit_db_path(data_dir), create=False) as upgraded:
        assert verify(upgraded).ok
        counted = upgraded.count(AuditFilter(recipient="hv-nfp"), by=("outcome",))
        assert [(c.group, c.count) for c in counted] == [(("deny",), 22), (("permit",), 8)]
        assert len(upgraded.page(AuditFilter(kind="decision"), limit=100).records) == 30
    conn = sqlite3.connect(audit_db_path(data_dir))
    try:
        indexes = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'audit_by_%'")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    assert version == 3
    assert indexes == {"audit_by_subject", "audit_by_recipient", "audit_by_agreement",
                       "audit_by_subscription", "audit_by_kind", "audit_by_time"}
