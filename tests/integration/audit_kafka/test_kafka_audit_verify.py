"""Verifying the audit log in Kafka finds every kind of tampering and names the first bad
record the way the embedded verifier does.

Kafka records cannot be edited, so tampering is done as someone with write access to
the cluster could: by appending forged records to the topic, or by rewriting the audit
topics under another prefix (a changed, removed or reordered record; a cut-off end).
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import CheckpointSigner
from broker.audit.kafka_records import AUDIT_TOPIC, CHECKPOINTS_TOPIC, checkpoint_value
from broker.audit.kafka_verify import verify_kafka
from broker.audit.records import Checkpoint, chain_hash
from broker.log.port import LogRecord, NewRecord
from tests.integration.audit_kafka.conftest import copy_audit, decision, read_topic

SMALL = {"event_type": "birth", "released": ["mother.given_name"], "withheld": []}


@pytest.fixture
def chained(space, signer):
    """Two writers' chains, 30 records each, interleaved in batches of 5 (odd batches
    with small details), checkpoints at positions 30 and 60; returns the two stores."""
    first, second = space.store("router-a"), space.store("router-b")
    for batch in range(12):
        store = first if batch % 2 else second
        detail = {"detail": SMALL} if batch % 4 == 1 else {}
        store.append([decision(batch * 5 + k, f"MPI-{k}", **detail) for k in range(5)])
        if batch in (5, 11):
            signer.checkpoint(first)
    return first, second


def positions(log, chain: str) -> list[int]:
    """Positions of a chain's records, in order."""
    return [r.offset + 1 for r in read_topic(log, AUDIT_TOPIC) if r.key == chain.encode()]


def replaced(records: list[LogRecord], position: int, value: bytes) -> list[LogRecord]:
    out = list(records)
    old = out[position - 1]
    out[position - 1] = LogRecord(old.topic, old.partition, old.offset, old.key, value,
                                  old.headers, old.timestamp_ms)
    return out


def test_sound_chains_verify(space, chained, signer):
    first, _second = chained
    report = verify_kafka(space.log(), signer.public_key)
    assert report.ok, report.problem
    assert (report.records_checked, report.chains, report.checkpoints_checked) == (60, 2, 2)
    assert report.signatures_checked
    assert (report.head_position, report.heads_hash) == first.head()
    assert report.summary() == (f"ok: 60 records in 2 chains, 2 checkpoints, heads "
                                f"sha256:{report.heads_hash} at position 60")


def test_an_empty_log_verifies(space):
    space.store()
    report = verify_kafka(space.log())
    assert report.ok and report.records_checked == 0


def test_a_forged_record_with_changed_content_is_named(space, chained, signer):
    first, _ = chained
    log = space.log()
    seventh = read_topic(log, AUDIT_TOPIC)[positions(log, first.chain)[6] - 1]
    forged = seventh.value.replace(b'"recipient":"hv-nfp"', b'"recipient":"cw-hotline"')
    log.append(AUDIT_TOPIC, [NewRecord(value=forged, key=seventh.key, headers=seventh.headers)])
    report = verify_kafka(log, signer.public_key)
    assert not report.ok
    assert report.problem == f"chain {first.chain} record 7: appears twice (again at position " \
                             "61; forged, or written by a second writer)"
    assert (report.first_bad_chain, report.first_bad_seq, report.first_bad_position) == (
        first.chain, 7, 61)


def test_a_changed_record_is_named(space, chained, signer):
    first, _ = chained
    log = space.log()
    where = positions(log, first.chain)[11]
    copy = copy_audit(space, log, records=lambda records: replaced(
        records, where, records[where - 1].value.replace(b'"outcome":"permit"',
                                                         b'"outcome":"deny"')))
    report = verify_kafka(copy, signer.public_key)
    assert not report.ok
    assert report.problem == f"chain {first.chain} record 12: hash mismatch (content changed)"
    assert report.records_checked == where - 1


def test_a_removed_record_is_named(space, chained, signer):
    _, second = chained
    log = space.log()
    where = positions(log, second.chain)[3]
    copy = copy_audit(space, log, records=lambda records: records[:where - 1] + records[where:])
    report = verify_kafka(copy, signer.public_key)
    assert report.problem == (f"chain {second.chain} record 4: missing (sequence jumps from 3 "
                              "to 5)")


def test_reordered_records_are_named(space, chained, signer):
    first, _ = chained
    log = space.log()
    a, b = positions(log, first.chain)[19:21]

    def swap(records):
        out = list(records)
        out[a - 1], out[b - 1] = out[b - 1], out[a - 1]
        return out

    report = verify_kafka(copy_audit(space, log, records=swap), signer.public_key)
    assert report.problem == (f"chain {first.chain} record 20: out of order (holds record 21; "
                              "reordered)")


def test_a_cut_off_end_is_caught_by_the_last_checkpoint(space, chained, signer):
    log = space.log()
    copy = copy_audit(space, log, records=lambda records: records[:55])
    report = verify_kafka(copy, signer.public_key)
    assert report.problem == ("audit log ends at position 55 but checkpoint 2 covers "
                              "position 60 (truncated)")


def canonical(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_a_chain_rewritten_with_fresh_hashes_is_caught_by_the_checkpoint(space, signer):
    store = space.store()
    store.append([decision(n, detail=SMALL) for n in range(10)])
    signer.checkpoint(store)

    def rewrite(records):
        # Change record 4 and recompute every hash after it, as docs/audit.md describes
        # them: the chain itself looks sound, but no longer matches what was signed.
        out, prev = [], bytes(32)
        for record in records:
            document = json.loads(record.value)
            if document["seq"] == 4:
                document["outcome"] = "deny"
            document["prev_hash"] = prev.hex()
            del document["hash"]
            prev = chain_hash(prev, canonical(document))
            document["hash"] = prev.hex()
            out.append(LogRecord(record.topic, 0, record.offset, record.key,
                                 canonical(document), record.headers, record.timestamp_ms))
        return out

    log = space.log()
    rewritten = copy_audit(space, log, records=rewrite)
    assert [r.value for r in read_topic(rewritten, AUDIT_TOPIC)][:3] == [
        r.value for r in read_topic(log, AUDIT_TOPIC)][:3]
    report = verify_kafka(rewritten, signer.public_key)
    assert report.problem == ("checkpoint 1 at position 10: signed heads do not match the "
                              "chains (records rewritten)")


def test_a_forged_checkpoint_is_named(space, chained, signer):
    log = space.log()
    position, digest = chained[0].head()
    other = CheckpointSigner(Ed25519PrivateKey.generate())
    forged = Checkpoint(0, position, digest, 1, other.key_id, other.sign(position, digest, 1))
    log.append(CHECKPOINTS_TOPIC, [NewRecord(value=checkpoint_value(forged))])
    report = verify_kafka(log, signer.public_key)
    assert report.problem == (
        f"checkpoint 3 at position 60: signature invalid (signed by key {other.key_id}, "
        f"not the pinned key {signer.key_id})")
    # Without a pinned key the checkpoint still matches the chains.
    assert verify_kafka(log).ok


def test_removed_checkpoints_are_caught_by_an_exported_copy(space, chained, signer):
    log = space.log()
    exported = [(c, None) for c in chained[0].checkpoints()]
    copy = copy_audit(space, log, records=lambda records: records[:40],
                      checkpoints=lambda checkpoints: checkpoints[:1])
    assert verify_kafka(copy, signer.public_key).ok   # consistent on its own …
    report = verify_kafka(copy, signer.public_key, exported_checkpoints=exported)
    assert report.problem == ("audit log ends at position 40 but checkpoint 2 covers "
                              "position 60 (truncated)")


def test_a_removed_shared_detail_part_is_named(space, chained, signer):
    log = space.log()
    copy = copy_audit(space, log, tails=lambda tails: [])
    report = verify_kafka(copy, signer.public_key)
    assert report.problem is not None
    assert report.problem.endswith("its detail refers to a missing shared part (removed)")
