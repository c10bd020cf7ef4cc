"""Verification finds every kind of tampering and names the first bad record."""

from __future__ import annotations

import sqlite3

import pytest

from broker.audit import CheckpointSigner, verify
from broker.audit.paths import audit_db_path, signing_key_path
from broker.errors import AuditError
from tests.integration.audit.conftest import RECOUNT


@pytest.fixture
def signer(data_dir):
    return CheckpointSigner.load_or_create(signing_key_path(data_dir))


SMALL_DETAIL = {"event_type": "birth", "released": ["mother.given_name"],
                "withheld": ["mother.ssn"]}


@pytest.fixture
def chained(store, decision, signer):
    """100 records with checkpoints after records 50 and 100. Odd records carry a full
    decision (sharing its long tail with the others), even ones a small detail."""

    def entry(n):
        return decision(f"MPI-{n % 7}", n, **({"detail": SMALL_DETAIL} if n % 2 else {}))

    store.append([entry(n) for n in range(50)])
    signer.checkpoint(store, at_ms=1_717_300_000_000)
    store.append([entry(n) for n in range(50, 100)])
    signer.checkpoint(store, at_ms=1_717_300_060_000)
    return store


def reverify(data_dir, public_key=None, **options):
    """Verify from the file, as an auditor would after the tampering."""
    return verify(audit_db_path(data_dir), public_key, **options)


def test_sound_chain_verifies(data_dir, chained, signer):
    report = reverify(data_dir, signer.public_key)
    assert report.ok
    assert report.problem is None
    assert report.records_checked == 100
    assert report.checkpoints_checked == 2
    assert report.signatures_checked
    assert report.head_seq == 100
    assert report.head_hash == chained.head()[1]
    assert report.summary() == (
        f"ok: 100 records, 2 checkpoints, head sha256:{chained.head()[1]}"
    )


def test_empty_store_verifies(data_dir, store):
    report = reverify(data_dir)
    assert report.ok
    assert report.records_checked == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET recipient = 'cw-hotline' WHERE seq = 37",
        "UPDATE audit_records SET outcome = 'deny' WHERE seq = 37",
        "UPDATE audit_records SET at_ms = at_ms + 1 WHERE seq = 37",
        "UPDATE audit_records SET subject = NULL WHERE seq = 37",
        "UPDATE audit_records SET detail = replace(detail, 'mother.ssn', 'mother.ssm') "
        "WHERE seq = 38",
    ],
)
def test_changed_record_is_named(data_dir, chained, signer, tamper, statement):
    tamper(statement)
    seq = 38 if "WHERE seq = 38" in statement else 37
    report = reverify(data_dir, signer.public_key)
    assert not report.ok
    assert report.first_bad_seq == seq
    assert report.problem == f"record {seq}: hash mismatch (content changed)"
    assert report.records_checked == seq - 1


def test_one_changed_character_in_a_detail_is_named(data_dir, chained, tamper):
    tamper("UPDATE audit_records SET detail = substr(detail, 1, 20) || 'X' || "
           "substr(detail, 22) WHERE seq = 37")
    assert reverify(data_dir).problem == "record 37: hash mismatch (content changed)"


def first_sharing(data_dir):
    """(seq, tail id) of the first record whose detail uses a shared tail."""
    conn = sqlite3.connect(audit_db_path(data_dir))
    try:
        return conn.execute("SELECT seq, detail_tail FROM audit_records "
                            "WHERE detail_tail IS NOT NULL ORDER BY seq LIMIT 1").fetchone()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_detail_tails SET text = replace(text, 'mother.ssn', 'mother.ssm') "
        "WHERE id = {tail}",
        "DELETE FROM audit_detail_tails WHERE id = {tail}",
        "UPDATE audit_records SET detail_tail = NULL WHERE seq = {seq}",
    ],
)
def test_tampering_with_a_shared_detail_part_is_named(data_dir, chained, tamper, statement):
    seq, tail = first_sharing(data_dir)
    tamper(statement.format(seq=seq, tail=tail))
    assert reverify(data_dir).problem == f"record {seq}: hash mismatch (content changed)"


def test_deleted_record_is_named(data_dir, chained, tamper):
    tamper("DELETE FROM audit_records WHERE seq = 61")
    report = reverify(data_dir)
    assert report.first_bad_seq == 61
    assert report.problem == "record 61: missing (sequence jumps from 60 to 62)"


def test_deleted_first_record_is_named(data_dir, chained, tamper):
    tamper("DELETE FROM audit_records WHERE seq = 1")
    assert reverify(data_dir).problem == "record 1: missing (chain starts at record 2)"


def test_swapped_records_are_named(data_dir, chained, tamper):
    # Exchange records 20 and 21, rows and all, as a reordering would.
    tamper(
        "UPDATE audit_records SET seq = -20 WHERE seq = 20",
        "UPDATE audit_records SET seq = 20 WHERE seq = 21",
        "UPDATE audit_records SET seq = 21 WHERE seq = -20",
    )
    report = reverify(data_dir)
    assert report.first_bad_seq == 20
    assert report.problem == "record 20: out of order (holds record 21; reordered)"


def test_record_rewritten_with_a_fresh_hash_breaks_the_next_link(data_dir, chained, tamper):
    # A forger who recomputes the hash of the record they changed still breaks the link
    # from the record after it.
    record = next(chained.iter_records(after=29))
    changed = type(record).from_dict({**record.to_dict(), "recipient": "cw-hotline"})
    tamper(
        f"UPDATE audit_records SET recipient = 'cw-hotline', "
        f"hash = X'{changed.computed_hash()}' WHERE seq = 30"
    )
    report = reverify(data_dir)
    assert report.first_bad_seq == 31
    assert report.problem.startswith("record 31: broken link")


def test_chain_rewritten_from_a_record_on_is_caught_by_the_checkpoint(
    data_dir, chained, signer, tamper, decision
):
    # Drop records 41..100 and write different ones in their place: the new chain is
    # internally consistent, but checkpoint 1 signed the old record 50.
    tamper("DELETE FROM audit_records WHERE seq > 40", "DELETE FROM audit_checkpoints "
           "WHERE number = 2")
    chained.append([decision("MPI-1", n, recipient="cw-hotline") for n in range(60)])
    report = reverify(data_dir, signer.public_key)
    assert report.first_bad_seq == 50
    assert report.problem == (
        "checkpoint 1 at record 50: signed hash does not match the chain (records rewritten)"
    )


def test_truncation_below_the_latest_checkpoint_is_named(data_dir, chained, tamper):
    tamper("DELETE FROM audit_records WHERE seq > 90")
    report = reverify(data_dir)
    assert not report.ok
    assert report.problem == (
        "chain ends at record 90 but checkpoint 2 covers record 100 (truncated)"
    )


def test_truncation_with_checkpoints_deleted_is_caught_by_exported_checkpoints(
    data_dir, chained, tamper
):
    exported = chained.checkpoints()
    tamper("DELETE FROM audit_records WHERE seq > 90",
           "DELETE FROM audit_checkpoints WHERE number = 2", *RECOUNT)
    assert reverify(data_dir).ok  # the store alone can no longer tell
    report = reverify(data_dir, exported_checkpoints=exported)
    assert report.problem == (
        "chain ends at record 90 but checkpoint 2 covers record 100 (truncated)"
    )


def test_deleted_checkpoint_in_the_middle_is_named(data_dir, chained, signer, decision, tamper):
    chained.append([decision(n=200)])
    signer.checkpoint(chained)
    tamper("DELETE FROM audit_checkpoints WHERE number = 2")
    report = reverify(data_dir)
    assert report.problem == "checkpoint 2: missing (checkpoint numbers jump from 1 to 3)"


def test_forged_checkpoint_signature_is_named(data_dir, chained, signer, tamper):
    signature = bytearray(chained.checkpoints()[1].signature)
    signature[0] ^= 1
    tamper(f"UPDATE audit_checkpoints SET signature = X'{signature.hex()}' WHERE number = 2")
    report = reverify(data_dir, signer.public_key)
    assert report.first_bad_seq == 100
    assert report.problem == "checkpoint 2 at record 100: signature invalid"
    assert report.checkpoints_checked == 1


def test_checkpoint_moved_to_another_record_fails_its_signature(data_dir, chained, signer, tamper):
    tamper("UPDATE audit_checkpoints SET seq = 40, hash = (SELECT hash FROM audit_records "
           "WHERE seq = 40) WHERE number = 1")
    report = reverify(data_dir, signer.public_key)
    assert report.problem == "checkpoint 1 at record 40: signature invalid"


def test_wrong_public_key_is_named(data_dir, tmp_path, chained, signer):
    other = CheckpointSigner.load_or_create(tmp_path / "other" / "audit-signing.pem")
    report = reverify(data_dir, other.public_key)
    assert not report.ok
    assert report.first_bad_seq == 50
    assert report.problem == (
        f"checkpoint 1 at record 50: signature invalid (signed by key {signer.key_id}, "
        f"not the pinned key {other.key_id})"
    )


def test_without_a_public_key_signatures_are_not_checked(data_dir, chained, tamper):
    tamper("UPDATE audit_checkpoints SET signature = X'00' WHERE number = 1")
    report = reverify(data_dir)
    assert report.ok
    assert not report.signatures_checked
    assert "signatures not checked" in report.summary()


def test_verify_accepts_an_open_store(chained, signer):
    assert verify(chained, signer.public_key).ok


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET at_ms = 'noon' WHERE seq = 12",
        "UPDATE audit_records SET recipient = X'3432' WHERE seq = 12",
        "UPDATE audit_records SET hash = 'not a hash' WHERE seq = 12",
        "UPDATE audit_records SET detail = X'00ff' WHERE seq = 12",
        "UPDATE audit_records SET detail_tail = 'x' WHERE seq = 12",
    ],
)
def test_values_of_the_wrong_type_are_reported_not_crashed_on(
    data_dir, chained, tamper, statement
):
    tamper(statement)
    assert reverify(data_dir).problem == "record 12: hash mismatch (content changed)"
    with pytest.raises(AuditError, match="record 12"):
        list(chained.iter_records())
