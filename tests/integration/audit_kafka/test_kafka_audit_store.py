"""The audit store on Kafka as the broker and a compliance officer use it: appends from
several processes, queries and the accounting of disclosures through any process's
index, checkpoints, restarts."""

from __future__ import annotations

import sqlite3

import pytest

from broker.audit import AuditEntry, AuditFilter, AuditStore
from broker.audit.errors import AuditEntryError, AuditStoreUnavailableError
from broker.audit.kafka_records import AUDIT_TOPIC
from broker.audit.kafka_store import KafkaAuditStore
from broker.audit.kafka_verify import verify_kafka
from broker.log.kafka import KafkaEventLog
from tests.integration.audit_kafka.conftest import PSEUDONYMS, decision, read_topic


def test_records_appended_by_one_process_are_found_through_another(space):
    router, api = space.store("router"), space.store("api")
    assert isinstance(router, AuditStore)
    stored = router.append([decision(n, f"MPI-{n % 3}") for n in range(30)])
    assert [r.chain_seq for r in stored] == list(range(1, 31))
    assert [r.seq for r in stored] == list(range(1, 31))   # positions in the log
    assert stored[0].prev_hash == "00" * 32
    assert stored[1].prev_hash == stored[0].hash
    assert stored[0].computed_hash() == stored[0].hash

    found = api.page(AuditFilter(subject=PSEUDONYMS.pseudonym("MPI-1")), limit=100).records
    assert [r.event_id for r in found] == [f"ev-{n}" for n in range(1, 30, 3)]
    assert found[0].to_dict() == {**stored[1].to_dict(), "detail": dict(stored[1].detail)}
    assert all(r.computed_hash() == r.hash for r in found)
    assert found[0].to_dict()["chain"] == router.chain
    disclosures = api.disclosures(AuditFilter(subject=PSEUDONYMS.pseudonym("MPI-1")))
    assert [d.event_id for d in disclosures] == [f"ev-{n}" for n in range(1, 30, 3)]
    assert disclosures[0].recipient == "hv-nfp"
    assert disclosures[0].purpose == "care_coordination"


def test_paging_by_seq_returns_every_record_of_every_chain_once(space):
    first, second, reader = space.store("router-a"), space.store("router-b"), space.store("api")
    for n in range(12):
        (first if n % 2 else second).append([decision(n * 10 + k) for k in range(5)])
    seen: list[str] = []
    cursor = None
    while (page := reader.page(AuditFilter(), cursor=cursor, limit=7)).records:
        seen.extend(r.event_id for r in page.records)
        cursor = page.cursor
    assert sorted(seen) == sorted(f"ev-{n * 10 + k}" for n in range(12) for k in range(5))
    chains = reader.chains()
    assert set(chains) == {first.chain, second.chain}
    assert {seq for seq, _ in chains.values()} == {30}


def test_each_store_writes_its_own_chain_and_a_restart_starts_a_new_one(space):
    before = space.store("router")
    before.append([decision(1)])
    after = space.store("router")
    after.append([decision(2)])
    assert before.chain != after.chain
    assert before.chain.startswith("router-") and after.chain.startswith("router-")
    assert set(before.chains()) == {before.chain, after.chain}


def test_checkpoints_sign_the_heads_of_every_chain(space, signer):
    router_a, router_b = space.store("router-a"), space.store("router-b")
    router_a.append([decision(n) for n in range(5)])
    router_b.append([decision(n) for n in range(5, 8)])
    first = signer.checkpoint(router_a)
    assert first is not None and first.number == 1
    assert (first.seq, first.hash) == router_b.head()
    # Nothing new: signing again adds nothing.
    assert signer.checkpoint(router_b) == first
    router_b.append([decision(9)])
    second = signer.checkpoint(router_b)
    assert second is not None and second.number == 2 and second.seq == 9
    assert router_a.checkpoints() == [first, second]
    assert router_a.latest_checkpoint() == second
    report = verify_kafka(space.log(), signer.public_key)
    assert report.ok, report.problem
    assert (report.records_checked, report.chains, report.checkpoints_checked) == (9, 2, 2)


def test_a_checkpoint_that_does_not_match_the_heads_is_refused(space, signer):
    store = space.store()
    store.append([decision(1), decision(2)])
    position, digest = store.head()
    with pytest.raises(Exception, match="do not have that digest"):
        store.add_checkpoint(position, "ab" * 32, 1, signer.key_id, b"x" * 64)
    assert store.checkpoints() == []
    assert store.add_checkpoint(position, digest, 1, signer.key_id,
                                signer.sign(position, digest, 1)).number == 1


def test_the_index_is_a_cache_rebuilt_from_kafka(space, tmp_path):
    writer = space.store(index="shared.db")
    writer.append([decision(n, f"MPI-{n % 2}") for n in range(20)])
    person = AuditFilter(subject=PSEUDONYMS.pseudonym("MPI-0"))
    expected = list(writer.iter_records(person))
    writer.close()
    (tmp_path / "shared.db").unlink()
    rebuilt = space.store(index="shared.db")
    assert list(rebuilt.iter_records(person)) == expected
    # A reopened index reads only what is new.
    rebuilt.append([decision(100, "MPI-0")])
    assert rebuilt.count(person)[0].count == 11


def test_a_raw_identifier_is_refused_before_anything_reaches_kafka(space):
    store = space.store()
    with pytest.raises(AuditEntryError):
        store.append([AuditEntry(kind="decision", at_ms=1, subject="MPI-0048213")])
    assert space.log().end_offset(AUDIT_TOPIC, 0) == 0
    assert store.chain is None


def test_raw_identifiers_never_reach_the_audit_topics(space):
    store = space.store()
    store.append([decision(n, "MPI-0048213") for n in range(5)])
    log = space.log()
    for topic in ("_audit", "_audit.tails", "_audit.checkpoints"):
        for record in read_topic(log, topic):
            assert b"MPI-0048213" not in record.value


@pytest.mark.slow
def test_a_failed_append_is_reported_and_the_next_append_starts_a_new_chain(tmp_path):
    from tests.kafka_broker import TansuBroker

    with TansuBroker() as broker:
        log = KafkaEventLog(broker.bootstrap_servers, request_timeout_s=2,
                            connect_timeout_s=2)
        store = KafkaAuditStore(log, tmp_path / "index.db")
        try:
            store.append([decision(1), decision(2)])   # the detail's shared end is stored
            first_chain = store.chain
            broker.stop()
            with pytest.raises(AuditStoreUnavailableError):
                store.append([decision(3)])
            assert store.chain is None   # never continued from an uncertain head
            assert first_chain is not None
        finally:
            store.close()
            log.close()


def test_an_index_pointed_at_another_audit_log_starts_afresh(space, kafka_broker):
    first = space.store(index="reused.db")
    first.append([decision(n) for n in range(3)])
    assert len(list(first.iter_records())) == 3
    first.close()
    # The same data directory, now pointed at another installation's topics.
    other_prefix = f"other{space.prefix}"
    writer = space.store(prefix=other_prefix)
    writer.append([decision(100)])
    reused = space.store(index="reused.db", prefix=other_prefix)
    assert [r.event_id for r in reused.iter_records()] == ["ev-100"]


def test_an_index_of_an_older_layout_is_rebuilt(space, tmp_path):
    space.store("router").append([decision(n, f"MPI-{n % 2}") for n in range(6)])
    old = sqlite3.connect(tmp_path / "old.db")
    old.executescript("CREATE TABLE records (pos INTEGER PRIMARY KEY, chain INTEGER);"
                      "CREATE TABLE progress (topic TEXT PRIMARY KEY, next_offset INTEGER);"
                      "INSERT INTO progress VALUES ('_audit', 6);")
    old.close()
    reopened = space.store(index="old.db")
    assert [r.event_id for r in reopened.iter_records()] == [f"ev-{n}" for n in range(6)]
