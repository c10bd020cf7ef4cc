"""Signed checkpoints: Ed25519 signatures over the chain head.

A checkpoint says "record `seq` has hash `hash`, as of `at_ms`", signed with the broker's
Ed25519 key. Anyone holding the public key can then detect a rewritten chain (the
signed hash no longer matches) or a truncated one (the signed seq no longer exists),
which the hash chain alone cannot. Export checkpoints and keep them, with the public
key, somewhere the broker's operators cannot write.

The signed bytes are `b"handoff-audit-checkpoint-v1\\n"` followed by the canonical JSON
of `{"at_ms": …, "hash": "<hex>", "seq": …}` (see `records.checkpoint_message`).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from broker.audit.errors import AuditKeyError
from broker.audit.paths import public_key_path
from broker.audit.records import Checkpoint, checkpoint_message
from broker.audit.store import AuditReader, CheckpointLog


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: `ed25519:` + 16 hex of its SHA-256."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo), the form to pin and distribute."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read a pinned Ed25519 public key (PEM) for verification."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise AuditKeyError(f"cannot read the public key {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise AuditKeyError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{path} is not an Ed25519 public key")
    return key


def signature_valid(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    """Whether `checkpoint` was signed by the holder of `public_key`."""
    try:
        public_key.verify(checkpoint.signature, checkpoint.message())
    except InvalidSignature:
        return False
    return True


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class CheckpointSigner:
    """Signs the audit chain head with an Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = public_key_id(self.public_key)

    @classmethod
    def load(cls, path: Path) -> CheckpointSigner:
        """Load the PEM private key at `path`; never create one or touch its `.pub`."""
        return cls(_load_private_key(path))

    @classmethod
    def load_or_create(cls, path: Path) -> CheckpointSigner:
        """Load the PEM private key at `path`, or create one (mode 0600) on first start.

        The public key is (re)written beside it as `<path>.pub`.
        """
        if not path.exists():
            private_key = Ed25519PrivateKey.generate()
            pem = private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            try:
                _write_private(path, pem)
            except FileExistsError:
                pass  # another process created it first; load theirs below
            except OSError as exc:
                raise AuditKeyError(f"cannot create the signing key {path}: {exc}") from exc
        signer = cls(_load_private_key(path))
        pub_path = public_key_path(path)
        pem_pub = public_key_pem(signer.public_key)
        try:
            if not pub_path.exists() or pub_path.read_bytes() != pem_pub:
                pub_path.write_bytes(pem_pub)
        except OSError as exc:
            raise AuditKeyError(f"cannot write the public key {pub_path}: {exc}") from exc
        return signer

    def sign(self, seq: int, hash_hex: str, at_ms: int) -> bytes:
        """The signature over (seq, hash, at_ms)."""
        return self._private_key.sign(checkpoint_message(seq, hash_hex, at_ms))

    def checkpoint(self, store: CheckpointLog, at_ms: int | None = None) -> Checkpoint | None:
        """Sign the store's current head and store the checkpoint.

        Returns None while the log is empty, and the latest checkpoint unchanged when it
        already covers the head, so signing on a timer adds nothing while the broker idles.
        """
        seq, hash_hex = store.head()
        if seq == 0:
            return None
        latest = store.latest_checkpoint()
        if latest is not None and latest.seq == seq and latest.key_id == self.key_id:
            return latest
        when = time.time_ns() // 1_000_000 if at_ms is None else at_ms
        return store.add_checkpoint(
            seq, hash_hex, when, self.key_id, self.sign(seq, hash_hex, when)
        )


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise AuditKeyError(f"cannot read the signing key {path}: {exc.strerror or exc}") from exc
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path} is not an Ed25519 private key")
    return key


def export_checkpoints(store: AuditReader) -> list[dict[str, Any]]:
    """Every checkpoint as a JSON-ready dict (one JSON line each when written out)."""
    return [checkpoint.to_dict() for checkpoint in store.checkpoints()]
