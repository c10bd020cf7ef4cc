"""Checkpoint signing keys and checkpoints as the broker writes them."""

from __future__ import annotations

import json
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from broker.audit import (
    AuditKeyError,
    Checkpoint,
    CheckpointSigner,
    export_checkpoints,
    load_public_key,
)
from broker.audit.checkpoints import signature_valid
from broker.audit.paths import signing_key_path, signing_public_key_path
from broker.errors import AuditError


def test_load_or_create_writes_a_private_key_only_its_owner_can_read(data_dir):
    signer = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    private = signing_key_path(data_dir)
    public = signing_public_key_path(data_dir)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert signer.key_id.startswith("ed25519:")


def test_load_or_create_reuses_the_existing_key(data_dir):
    first = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    signing_public_key_path(data_dir).unlink()
    second = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    assert second.key_id == first.key_id
    pinned = load_public_key(signing_public_key_path(data_dir))
    assert pinned.public_bytes_raw() == first.public_key.public_bytes_raw()


@pytest.mark.parametrize(
    "content",
    [
        b"not a key",
        generate_private_key(SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        ),
    ],
    ids=["not a key", "a P-256 key"],
)
def test_a_file_that_is_not_an_ed25519_key_is_refused(tmp_path, content):
    path = tmp_path / "audit-signing.pem"
    path.write_bytes(content)
    with pytest.raises(AuditKeyError):
        CheckpointSigner.load_or_create(path)


def test_missing_public_key_is_a_key_error(tmp_path):
    with pytest.raises(AuditKeyError, match="cannot read"):
        load_public_key(tmp_path / "absent.pub")


def test_checkpoint_signs_the_current_head(data_dir, store, decision):
    signer = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    assert signer.checkpoint(store) is None  # nothing to sign yet
    store.append([decision(n=n) for n in range(3)])
    checkpoint = signer.checkpoint(store, at_ms=1_717_300_000_000)
    assert checkpoint is not None
    assert (checkpoint.number, checkpoint.seq, checkpoint.hash) == (1, 3, store.head()[1])
    assert checkpoint.key_id == signer.key_id
    assert signature_valid(checkpoint, signer.public_key)
    assert store.checkpoints() == [checkpoint]


def test_no_new_checkpoint_while_the_head_has_not_moved(data_dir, store, decision):
    signer = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    store.append([decision()])
    first = signer.checkpoint(store)
    assert signer.checkpoint(store) == first
    store.append([decision(n=1)])
    second = signer.checkpoint(store)
    assert second is not None
    assert second.number == 2


def test_store_refuses_a_checkpoint_of_a_record_it_does_not_hold(store, decision):
    store.append([decision()])
    with pytest.raises(AuditError, match="not in the chain"):
        store.add_checkpoint(1, "ab" * 32, 0, "ed25519:x", b"sig")
    with pytest.raises(AuditError, match="not in the chain"):
        store.add_checkpoint(2, store.head()[1], 0, "ed25519:x", b"sig")


def test_exported_checkpoints_read_back_and_still_verify(data_dir, store, decision):
    signer = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    for n in range(3):
        store.append([decision(n=n)])
        signer.checkpoint(store)
    lines = [json.dumps(item) for item in export_checkpoints(store)]
    restored = [Checkpoint.from_dict(json.loads(line)) for line in lines]
    assert restored == store.checkpoints()
    assert all(signature_valid(item, signer.public_key) for item in restored)
