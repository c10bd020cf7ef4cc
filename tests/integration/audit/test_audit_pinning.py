"""`handoff audit verify` trusts only a key the compliance office pinned.

A forger with write access to the data directory rewrites the log and re-signs its
checkpoints with a key of their own, then replaces the public key beside the data, or
deletes it. Verifying without `--public-key` must not quietly trust what it finds there.
"""

from __future__ import annotations

import json
import shutil

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from broker.audit import AuditEntry, CheckpointSigner, SqliteAuditStore
from broker.audit.paths import audit_db_path, signing_key_path, signing_public_key_path
from broker.cli.main import app

runner = CliRunner()


def handoff(*args):
    return runner.invoke(app, ["audit", *map(str, args)])


@pytest.fixture
def installed(data_dir, store, decision, tmp_path):
    """A data directory as the broker leaves it, and the public key exported at install
    (`handoff audit public-key`) to a place the broker's operators cannot write."""
    signer = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    store.append([decision(f"MPI-{n % 3}", n) for n in range(20)])
    signer.checkpoint(store)
    store.append([decision(f"MPI-{n % 3}", n) for n in range(20, 30)])
    signer.checkpoint(store)
    store.close()
    pinned = tmp_path / "compliance-office" / "handoff-audit.pub"
    pinned.parent.mkdir()
    exported = handoff("public-key", "--data", data_dir, "--out", pinned)
    assert exported.exit_code == 0, exported.output
    assert signer.key_id in exported.stderr
    return data_dir, pinned, signer


def forge(data_dir):
    """Rewrite the log with record 12 sent elsewhere, and sign it anew with the forger's
    own key, written where the broker's key was."""
    with SqliteAuditStore(audit_db_path(data_dir), create=False) as store:
        records = list(store.iter_records())
        signed_at = [checkpoint.seq for checkpoint in store.checkpoints()]
    for path in data_dir.glob("audit.db*"):
        path.unlink()
    shutil.rmtree(data_dir / "keys")
    forger = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    with SqliteAuditStore(audit_db_path(data_dir)) as forged:
        for record in records:
            forged.append([AuditEntry(
                kind=record.kind, at_ms=record.at_ms, subject=record.subject,
                recipient="cw-hotline" if record.seq == 12 else record.recipient,
                source=record.source, agreement=record.agreement,
                subscription=record.subscription, outcome=record.outcome,
                event_id=record.event_id, decision_id=record.decision_id,
                actor=record.actor, detail=record.detail)])
            if record.seq in signed_at:
                forger.checkpoint(forged)
    return forger


def test_the_public_key_exported_at_install_is_the_signing_key_even_if_its_copy_is_gone(
    installed, tmp_path
):
    data_dir, pinned, signer = installed
    signing_public_key_path(data_dir).unlink()
    again = tmp_path / "again.pub"
    assert handoff("public-key", "--data", data_dir, "--out", again).exit_code == 0
    assert again.read_bytes() == pinned.read_bytes() == signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_verify_with_the_pinned_key_is_sound_and_says_so_plainly(installed):
    data_dir, pinned, _ = installed
    result = handoff("verify", "--data", data_dir, "--public-key", pinned)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: 30 records, 2 checkpoints, head sha256:")
    assert "UNPINNED" not in result.stdout
    assert result.stderr == ""


def test_a_replaced_public_key_beside_the_data_is_used_only_with_a_loud_warning(installed):
    data_dir, pinned, _ = installed
    forger = forge(data_dir)
    assert signing_public_key_path(data_dir).read_bytes() != pinned.read_bytes()

    unpinned = handoff("verify", "--data", data_dir)
    assert unpinned.exit_code == 0                      # the forgery is self-consistent …
    assert unpinned.stdout.startswith("ok: 30 records, 2 checkpoints")
    assert unpinned.stdout.rstrip().endswith(   # … and the report says what it rests on
        f"(signatures checked against an UNPINNED key beside the data: "
        f"{signing_public_key_path(data_dir)})")
    assert unpinned.stderr.startswith("WARNING: checkpoint signatures are checked against ")
    assert "--public-key" in unpinned.stderr
    report = json.loads(handoff("verify", "--data", data_dir, "--json").stdout)
    assert (report["ok"], report["key"]) == (True, "unpinned")

    caught = handoff("verify", "--data", data_dir, "--public-key", pinned)
    assert caught.exit_code == 1
    assert caught.stdout.startswith(
        f"FAILED: checkpoint 1 at record 20: signature invalid (signed by key "
        f"{forger.key_id}, not the pinned key ")


def test_a_deleted_public_key_makes_verify_refuse_rather_than_skip_signatures(installed):
    data_dir, pinned, _ = installed
    forge(data_dir)
    signing_public_key_path(data_dir).unlink()
    result = handoff("verify", "--data", data_dir)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "no public key to check checkpoint signatures against" in result.stderr
    assert "--public-key" in result.stderr and "--chain-only" in result.stderr
    assert handoff("verify", "--data", data_dir, "--public-key", pinned).exit_code == 1


def test_a_pinned_key_that_did_not_sign_the_checkpoints_fails(installed, tmp_path):
    data_dir, _, signer = installed
    other = CheckpointSigner.load_or_create(tmp_path / "other" / "key.pem")
    result = handoff("verify", "--data", data_dir, "--public-key",
                     tmp_path / "other" / "key.pem.pub")
    assert result.exit_code == 1
    assert result.stdout == (
        f"FAILED: checkpoint 1 at record 20: signature invalid (signed by key "
        f"{signer.key_id}, not the pinned key {other.key_id})\n")


def test_chain_only_checks_the_chain_without_a_key_and_says_so(installed, tamper):
    data_dir, _, _ = installed
    signing_public_key_path(data_dir).unlink()
    result = handoff("verify", "--data", data_dir, "--chain-only")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: 30 records, 2 checkpoints (signatures not checked: "
                                    "--chain-only), head sha256:")
    report = json.loads(handoff("verify", "--data", data_dir, "--chain-only", "--json").stdout)
    assert (report["ok"], report["key"], report["signatures_checked"]) == (True, "none", False)

    tamper("UPDATE audit_records SET outcome = 'deny' WHERE seq = 7")
    failed = handoff("verify", "--data", data_dir, "--chain-only")
    assert failed.exit_code == 1
    assert failed.stdout == "FAILED: record 7: hash mismatch (content changed)\n"


def test_chain_only_and_a_public_key_together_are_a_usage_error(installed):
    data_dir, pinned, _ = installed
    result = handoff("verify", "--data", data_dir, "--chain-only", "--public-key", pinned)
    assert result.exit_code == 2
    assert "not both" in result.stderr
