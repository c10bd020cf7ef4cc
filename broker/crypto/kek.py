"""Key-encryption keys (KEKs): the port, and a local AES-256 key from a file or the
environment.

Envelope encryption: records are encrypted under data keys, and data keys are stored
only wrapped (encrypted) by a KEK. Rotating the KEK re-wraps the few data keys and leaves
the records alone. A KMS (AWS KMS, Google Cloud KMS, Vault transit) slots in by
implementing `KeyEncryptionKey` with its encrypt and decrypt calls; nothing else changes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.errors import DataKeyUnavailableError, KekError

KEK_BYTES = 32
_NONCE_BYTES = 12
_WRAP_VERSION = b"\x01"
_ID_LABEL = b"handoff kek id v1"


@runtime_checkable
class KeyEncryptionKey(Protocol):
    """Wraps and unwraps data keys. Implementations never reveal their key material."""

    @property
    def kek_id(self) -> str:
        """A stable, non-secret name for this KEK, stored beside every key it wraps."""
        ...

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """Encrypt `data_key`, binding `context` (checked again by `unwrap`)."""
        ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Decrypt a key `wrap` produced with the same context; raise
        `DataKeyUnavailableError` when it is not this KEK's or was altered."""
        ...


class LocalKek:
    """An AES-256 KEK held in memory, wrapping with AES-GCM under a random nonce.

    The id is derived from the key by HMAC, so it names the key without revealing it and
    tells an operator at once that a configured KEK is not the one the data needs.
    """

    def __init__(self, material: bytes) -> None:
        if len(material) != KEK_BYTES:
            raise KekError(f"a key-encryption key must be {KEK_BYTES} bytes, "
                           f"not {len(material)}")
        self._aead = AESGCM(material)
        digest = hmac.new(material, _ID_LABEL, hashlib.sha256).hexdigest()
        self._id = "kek-" + digest[:16]

    def __repr__(self) -> str:
        return f"LocalKek({self._id})"

    @property
    def kek_id(self) -> str:
        return self._id

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _WRAP_VERSION + nonce + self._aead.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        if len(wrapped) < 1 + _NONCE_BYTES + 16 or wrapped[:1] != _WRAP_VERSION:
            raise DataKeyUnavailableError("a wrapped data key is malformed")
        nonce, body = wrapped[1:1 + _NONCE_BYTES], wrapped[1 + _NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, body, context)
        except InvalidTag as exc:
            raise DataKeyUnavailableError(
                f"a data key could not be unwrapped with {self._id}: wrong KEK or altered key"
            ) from exc


def parse_kek(text: bytes, where: str) -> LocalKek:
    """A KEK from its stored form: base64 (as `new_kek_text` writes), 64 hex digits, or
    32 raw bytes. `where` names the file or variable in errors; the value never appears."""
    stripped = text.strip()
    candidates: list[bytes] = []
    if len(text) == KEK_BYTES:
        candidates.append(text)
    with suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(stripped, validate=True))
    with suppress(UnicodeDecodeError, ValueError):
        candidates.append(bytes.fromhex(stripped.decode("ascii")))
    for material in candidates:
        if len(material) == KEK_BYTES:
            return LocalKek(material)
    raise KekError(f"{where} does not hold a {KEK_BYTES}-byte key-encryption key "
                   "(expected base64 or hex); create one with `handoff encryption new-kek`")


def load_kek(file: Path | None, env_name: str | None, environ: Mapping[str, str],
             what: str = "encryption.kek_file / encryption.kek_env") -> LocalKek | None:
    """Read a KEK from `file`, else from the environment variable named `env_name`.
    None when neither is set."""
    if file is not None:
        try:
            return parse_kek(Path(file).read_bytes(), str(file))
        except OSError as exc:
            raise KekError(f"{file}: cannot read the key-encryption key: "
                           f"{exc.strerror or exc}; check {what}") from exc
    if env_name:
        value = environ.get(env_name)
        if not value:
            raise KekError(f"environment variable {env_name} (named by {what}) is not set")
        return parse_kek(value.encode(), f"environment variable {env_name}")
    return None


def new_kek_text() -> bytes:
    """A fresh random KEK in the form `parse_kek` reads (base64 and a newline)."""
    return base64.b64encode(secrets.token_bytes(KEK_BYTES)) + b"\n"


def write_new_kek(path: Path) -> LocalKek:
    """Create a KEK file readable by its owner only; refuse to overwrite one."""
    text = new_kek_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KekError(f"{path} exists; a key-encryption key is never overwritten") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(text)
    return parse_kek(text, str(path))
