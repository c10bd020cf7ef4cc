"""An editor with write access to a process's local audit index (`audit-index.db`, what
queries, the accounting of disclosures and the API's head read) changes one column of one
record, or a chain head, a shared detail tail, a checkpoint, the reading progress. What
readers see changes; verifying the log with that index fails naming the record, while
Kafka itself is untouched and verifies alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from broker.audit import AuditFilter
from broker.audit.kafka_store import KafkaAuditStore
from broker.audit.kafka_verify import verify_kafka
from broker.errors import AuditError
from tests.integration.audit_kafka.conftest import PSEUDONYMS, decision

pytestmark = pytest.mark.slow   # about 3 s each: two verifications against Kafka

PERSON = "MPI-0048213"
TARGET = 8
"""Position of the record the editor changes: router-b's record 3, about PERSON."""


@pytest.fixture
def indexed(space, signer, tmp_path):
    """Two writers' chains (12 records, TARGET about PERSON), a checkpoint, and an API
    process's index that has read all of it; returns (index path, pinned key, log)."""
    first, second = space.store("router-a"), space.store("router-b")
    first.append([decision(n, f"MPI-{n}") for n in range(5)])
    second.append([decision(n, PERSON if n % 2 else f"MPI-{n}") for n in range(5, 12)])
    signer.checkpoint(first)
    api = space.store("api", index="api-index.db")
    assert len(list(api.iter_records())) == 12
    return tmp_path / "api-index.db", signer.public_key, space.log()


def edit(index: Path, *statements: str) -> None:
    conn = sqlite3.connect(index, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def what_readers_see(space, index: Path) -> object:
    """What the API process would answer from this index (or the error it would give)."""
    reader = KafkaAuditStore(space.log(), index, writer="api")
    try:
        return (
            [r.to_dict() for r in reader.iter_records()],
            [d.to_dict() for d in reader.disclosures(
                AuditFilter(subject=PSEUDONYMS.pseudonym(PERSON)))],
            reader.count(AuditFilter(), by=("recipient", "outcome")),
            reader.head(), reader.latest_checkpoint(),
        )
    except (AuditError, ValueError) as exc:
        return repr(exc)
    finally:
        reader.close()


RECORD_EDITS = {
    "seq": "seq = seq + 100",
    "kind": "kind = 'consent_change'",
    "at_ms": "at_ms = at_ms + 86400000",
    "subject": "subject = 'sp_00000000000000000000000000000000'",
    "recipient": "recipient = 'cw-hotline'",
    "source": "source = 'vital-records'",
    "agreement": "agreement = 'cg-cw-match'",
    "subscription": "subscription = 'cw-birth-match'",
    "outcome": "outcome = 'deny'",
    "event_id": "event_id = 'ev-forged'",
    "decision_id": "decision_id = 'ffffffffffffffffffffffffffffffff'",
    "actor": "actor = 'someone-else'",
    "detail": "detail = detail || '\"note\":\"forged\",'",
    "prev_hash": "prev_hash = zeroblob(32)",
    "hash": "hash = zeroblob(32)",
    "detail_tail": "detail_tail = NULL",
    "subject_bucket": "subject_bucket = NULL",
    "chain": "chain = (SELECT id FROM chains WHERE name LIKE 'router-a-%')",
    "chain_seq": "chain_seq = chain_seq + 1",
}


@pytest.mark.parametrize("change", list(RECORD_EDITS.values()), ids=list(RECORD_EDITS))
def test_an_editor_changing_any_column_of_an_indexed_record_is_named(
    space, indexed, change
):
    index, public_key, log = indexed
    before = what_readers_see(space, index)
    edit(index, f"UPDATE audit_records SET {change} WHERE seq = {TARGET}")
    assert what_readers_see(space, index) != before

    assert verify_kafka(log, public_key).ok   # Kafka itself is untouched
    report = verify_kafka(log, public_key, index=index)
    assert not report.ok
    assert report.first_bad_position == TARGET
    assert report.problem.startswith(
        f"audit index {index}: the record at position {TARGET} (chain router-b-"), report.problem
    assert "record 3)" in report.problem


OTHER_EDITS = {
    "a record removed": ("DELETE FROM audit_records WHERE seq = 8",
                         "the record at position 8 (chain router-b-"),
    "every record of a person hidden":
        (f"UPDATE audit_records SET subject_bucket = -1 WHERE subject = "
         f"'{PSEUDONYMS.pseudonym(PERSON)}'", "the record at position 6 (chain router-b-"),
    "a record inserted": ("INSERT INTO audit_records SELECT seq + 1000, kind, at_ms, subject, "
                          "recipient, source, agreement, subscription, outcome, event_id, "
                          "decision_id, actor, detail, prev_hash, hash, detail_tail, "
                          "subject_bucket, chain, chain_seq FROM audit_records WHERE seq = 8",
                          "a record at position 1008"),
    "a shared detail tail": ("UPDATE tails SET text = replace(text, 'field', 'f1eld')",
                             "the shared end of its detail was altered"),
    "a chain head": ("UPDATE chains SET head_seq = head_seq - 1 WHERE name LIKE 'router-b-%'",
                     "the head it holds for chain router-b-"),
    "a checkpoint": ("UPDATE checkpoints SET at_ms = at_ms + 1", "checkpoint 1 in it differs"),
    "a checkpoint removed": ("DELETE FROM checkpoints", "checkpoint 1 is missing from it"),
    "the reading progress": ("UPDATE progress SET next_offset = next_offset + 5 "
                             "WHERE topic = '_audit'", "claims to have read 17 records"),
    "the origin": ("UPDATE meta SET value = 'x' WHERE name = 'origin'",
                   "built from another audit log"),
    "a daily count": ("UPDATE audit_counts SET records = records + 1 WHERE rowid = 1",
                      "the daily count of day 19875"),
}


@pytest.mark.parametrize(("change", "named"), list(OTHER_EDITS.values()), ids=list(OTHER_EDITS))
def test_an_editor_changing_the_rest_of_the_index_is_named(space, indexed, change, named):
    index, public_key, log = indexed
    edit(index, change)
    report = verify_kafka(log, public_key, index=index)
    assert not report.ok
    assert report.problem.startswith(f"audit index {index}: "), report.problem
    assert named in report.problem, report.problem


def test_a_sound_index_is_reported_checked(space, indexed):
    index, public_key, log = indexed
    report = verify_kafka(log, public_key, index=index)
    assert report.ok, report.problem
    assert report.summary().endswith(f"; index {index} matches")


def test_an_index_that_has_not_read_everything_yet_is_checked_as_far_as_it_read(
    space, indexed
):
    index, public_key, log = indexed
    space.store("router-c").append([decision(n) for n in range(20, 25)])
    assert verify_kafka(log, public_key, index=index).ok
