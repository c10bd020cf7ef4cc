"""An editor with write access to audit.db drops the triggers and changes one column of
one record (or of every record about one person): whatever column it is, what queries
and reports show changes, and `handoff audit verify`, run as a compliance officer runs
it (pinned key, checkpoints exported beforehand), fails naming the record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.audit import AuditFilter, CheckpointSigner, SqliteAuditStore
from broker.audit.paths import audit_db_path, signing_key_path, signing_public_key_path
from broker.cli.main import app
from broker.errors import AuditError

runner = CliRunner()
PERSON = "MPI-0048213"
TARGET = 23
"""The record the editor changes: a decision about PERSON, its detail sharing a tail."""

SMALL = {"event_type": "birth", "released": ["mother.given_name"], "withheld": []}


@pytest.fixture
def installation(data_dir, store, decision, tmp_path):
    """60 records, checkpointed twice; the public key pinned and the checkpoints exported
    outside the data directory, as docs/audit.md tells the compliance office to."""
    signer = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    store.append([decision(PERSON if n % 3 == 1 else f"MPI-{n}", n,
                           **({"detail": SMALL} if n % 10 == 9 else {})) for n in range(30)])
    signer.checkpoint(store)
    store.append([decision(PERSON if n % 3 == 1 else f"MPI-{n}", n) for n in range(30, 60)])
    signer.checkpoint(store)
    pinned = tmp_path / "compliance-office" / "audit-signing.pub"
    pinned.parent.mkdir()
    pinned.write_bytes(signing_public_key_path(data_dir).read_bytes())
    exported = tmp_path / "compliance-office" / "checkpoints.jsonl"
    exported.write_text("".join(json.dumps(c.to_dict()) + "\n" for c in store.checkpoints()))
    store.close()
    return data_dir, pinned, exported


def what_readers_see(data_dir: Path, pseudonym: str) -> object:
    """Everything a query, an export or the accounting of disclosures would show (or the
    error they would give)."""
    try:
        return _read_everything(data_dir, pseudonym)
    except (AuditError, ValueError) as exc:
        return repr(exc)


def _read_everything(data_dir: Path, pseudonym: str) -> object:
    with SqliteAuditStore(audit_db_path(data_dir), create=False) as store:
        return (
            [record.to_dict() for record in store.iter_records()],
            [record.to_dict() for record in store.page(AuditFilter(), limit=1000).records],
            [d.to_dict() for d in store.disclosures(AuditFilter(subject=pseudonym))],
            store.count(AuditFilter(kind="decision"), by=("agreement", "outcome", "recipient")),
            store.count(AuditFilter(since_ms=1_717_243_210_000, until_ms=1_717_243_240_000)),
            [r.seq for r in store.page(AuditFilter(recipient="hv-nfp"), limit=1000).records],
        )


EDITS = {
    "seq": "seq = seq + 1000",
    "kind": "kind = 'consent_change'",
    "at_ms": "at_ms = at_ms + 86400000",
    "at_ms (same instant, as a real number)": "at_ms = at_ms + 0.5",
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
    "subject_bucket (another bucket)": "subject_bucket = subject_bucket + 7",
}


@pytest.mark.parametrize("change", list(EDITS.values()), ids=list(EDITS))
def test_an_editor_changing_any_column_of_a_record_is_named_by_verify(
    installation, pseudonymizer, tamper, change
):
    data_dir, pinned, exported = installation
    before = what_readers_see(data_dir, pseudonymizer.pseudonym(PERSON))
    tamper(f"UPDATE audit_records SET {change} WHERE seq = {TARGET}")
    assert what_readers_see(data_dir, pseudonymizer.pseudonym(PERSON)) != before

    result = runner.invoke(app, ["audit", "verify", "--data", str(data_dir),
                                 "--public-key", str(pinned), "--checkpoints", str(exported)])
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith(f"FAILED: record {TARGET}: "), result.stdout


def test_hiding_every_disclosure_of_a_person_fails_verification(
    installation, pseudonymizer, tamper
):
    data_dir, pinned, exported = installation
    person = pseudonymizer.pseudonym(PERSON)
    assert len(what_readers_see(data_dir, person)[2]) == 20   # type: ignore[index]
    tamper(f"UPDATE audit_records SET subject_bucket = -1 WHERE subject = '{person}'")
    assert what_readers_see(data_dir, person)[2] == []        # type: ignore[index]

    result = runner.invoke(app, ["audit", "verify", "--data", str(data_dir),
                                 "--public-key", str(pinned), "--checkpoints", str(exported)])
    assert result.exit_code == 1
    assert result.stdout == (
        "FAILED: record 2: its subject index column (subject_bucket) was altered outside "
        "the chain: lookups by subject would miss it\n")


def test_an_editor_changing_a_shared_detail_tail_is_named(installation, tamper):
    data_dir, pinned, exported = installation
    tamper("UPDATE audit_detail_tails SET text = replace(text, 'field', 'f1eld')")
    result = runner.invoke(app, ["audit", "verify", "--data", str(data_dir),
                                 "--public-key", str(pinned), "--checkpoints", str(exported)])
    assert result.exit_code == 1
    assert result.stdout.startswith("FAILED: record "), result.stdout



def test_an_editor_changing_a_daily_count_is_named(installation, pseudonymizer, tamper):
    data_dir, pinned, exported = installation
    before = what_readers_see(data_dir, pseudonymizer.pseudonym(PERSON))
    tamper("UPDATE audit_counts SET records = records - 1")
    assert what_readers_see(data_dir, pseudonymizer.pseudonym(PERSON)) != before
    result = runner.invoke(app, ["audit", "verify", "--data", str(data_dir),
                                 "--public-key", str(pinned), "--checkpoints", str(exported)])
    assert result.exit_code == 1
    assert result.stdout.startswith("FAILED: the daily count of day 19875 (kind decision, "
                                    "outcome permit, agreement cg-hv-births, recipient "
                                    "hv-nfp, source county-general, subscription hv-births) "
                                    "says 59 records where there are 60"), result.stdout
