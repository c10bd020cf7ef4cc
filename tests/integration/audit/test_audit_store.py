"""SqliteAuditStore: chaining, persistence, queries, disclosures, and no raw identifiers."""

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
    AuditQueryError,
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
        found = reopened.query(subject=pseudonymizer.pseudonym("MPI-0048213"), limit=100)
        exported = io.StringIO()
        export_jsonl(reopened, exported)
    assert len(found) == 20
    # Large details are stored compressed, so look at them decompressed as well.
    assert "MPI-0048213" not in exported.getvalue()


def test_raw_subject_id_is_refused_before_it_is_stored(store):
    with pytest.raises(AuditEntryError):
        store.append([AuditEntry(kind="decision", at_ms=1, subject="MPI-0048213")])
    assert store.head()[0] == 0


FILTER_CASES = [
    ({}, 40),
    ({"recipient": "hv-nfp"}, 30),
    ({"recipient": "cw-hotline"}, 10),
    ({"agreement": "cg-cw-match"}, 10),
    ({"subscription": "cw-birth-match"}, 10),
    ({"source": "vital-records"}, 20),
    ({"outcome": "deny"}, 8),
    ({"kind": "decision"}, 40),
    ({"kind": "consent_change"}, 0),
    ({"since_ms": 1_717_243_210_000}, 30),
    ({"until_ms": 1_717_243_210_000}, 10),
    ({"since_ms": 1_717_243_205_000, "until_ms": 1_717_243_215_000}, 10),
    ({"recipient": "hv-nfp", "outcome": "deny"}, 6),
]


@pytest.fixture
def varied(store, decision):
    entries = []
    for n in range(40):
        to_hotline = n % 4 == 3
        entries.append(decision(
            f"MPI-{n % 5}", n,
            recipient="cw-hotline" if to_hotline else "hv-nfp",
            agreement="cg-cw-match" if to_hotline else "cg-hv-births",
            subscription="cw-birth-match" if to_hotline else "hv-births",
            source="vital-records" if n % 2 else "county-general",
            outcome="deny" if n % 5 == 0 else "permit",
        ))
    store.append(entries)
    return store


@pytest.mark.parametrize(("filters", "count"), FILTER_CASES)
def test_query_filters(varied, filters, count):
    found = varied.query(**filters, limit=1000)
    assert len(found) == count
    assert [record.seq for record in found] == sorted(record.seq for record in found)
    for name, value in filters.items():
        for record in found:
            if name == "since_ms":
                assert record.at_ms >= value
            elif name == "until_ms":
                assert record.at_ms < value
            else:
                assert getattr(record, name) == value
    assert len(list(varied.iter_records(where=AuditFilter(**filters)))) == count


def test_query_by_subject_finds_only_that_person(varied, pseudonymizer):
    pseudonym = pseudonymizer.pseudonym("MPI-2")
    found = varied.query(subject=pseudonym, limit=1000)
    assert [record.seq for record in found] == [n + 1 for n in range(40) if n % 5 == 2]
    assert {record.subject for record in found} == {pseudonym}


def test_query_pages_with_after_seq_and_limit(varied):
    first = varied.query(recipient="hv-nfp", limit=7)
    second = varied.query(recipient="hv-nfp", after_seq=first[-1].seq, limit=7)
    everything = varied.query(recipient="hv-nfp", limit=1000)
    assert [r.seq for r in first + second] == [r.seq for r in everything[:14]]


@pytest.mark.parametrize(
    "arguments", [{"limit": 0}, {"since_ms": 10, "until_ms": 5}]
)
def test_query_refuses_invalid_arguments(store, arguments):
    with pytest.raises(AuditQueryError):
        store.query(**arguments)


def test_disclosures_list_only_permitted_decisions_about_that_subject(
    store, decision, pseudonymizer
):
    store.append([
        decision("MPI-0048213", 0),
        decision("MPI-0048213", 1, outcome="deny"),
        decision("MPI-9999999", 2),
        AuditEntry(kind="consent_change", at_ms=5, outcome="permit",
                   subject=pseudonymizer.pseudonym("MPI-0048213"),
                   detail={"consent_id": "consent-17"}),
        decision("MPI-0048213", 3, recipient="cw-hotline", subscription="cw-birth-match",
                 agreement="cg-cw-match"),
    ])
    found = store.disclosures(pseudonymizer.pseudonym("MPI-0048213"))
    assert [(d.seq, d.recipient) for d in found] == [(1, "hv-nfp"), (5, "cw-hotline")]
    first = found[0]
    assert first.data_disclosed == ("mother.given_name", "mother.phone", "mother.address.zip")
    assert first.purpose == "care_coordination"
    assert first.legal_basis == ("cg-hv-births", "45 CFR 164.506(c)(4)")
    assert first.consent_ids == ("consent-17",)
    assert first.event_type == "birth"
    assert first.decision_id == f"{0:032x}"


def test_disclosures_can_be_limited_to_a_period(store, decision, pseudonymizer):
    store.append([decision("MPI-1", n) for n in range(10)])
    found = store.disclosures(
        pseudonymizer.pseudonym("MPI-1"),
        since_ms=1_717_243_203_000, until_ms=1_717_243_206_000,
    )
    assert [d.seq for d in found] == [4, 5, 6]


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
