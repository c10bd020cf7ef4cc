"""Subject pseudonyms: how the audit log names a person without holding their identifier.

`pseudonym = "sp_" + hex(HMAC-SHA256(key, "handoff-audit-subject\\0" || utf8(subject_id)))[:32]`

The key stays with the broker (`<data dir>/keys/subject-pseudonym.key`), so a pseudonym
found in an export cannot be turned back into an identifier, while a compliance officer
holding the key can still find every record about one person. The domain prefix keeps
these pseudonyms distinct from any other HMAC computed with the same key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from broker.audit.errors import AuditKeyError
from broker.audit.records import SUBJECT_PSEUDONYM_PATTERN

PSEUDONYM_KEY_BYTES = 32
_MIN_KEY_BYTES = 16
_DOMAIN = b"handoff-audit-subject\x00"


def is_subject_pseudonym(value: str) -> bool:
    """Whether `value` has the shape of a subject pseudonym."""
    return SUBJECT_PSEUDONYM_PATTERN.fullmatch(value) is not None


class SubjectPseudonymizer:
    """Turns raw subject identifiers into stable, keyed, one-way pseudonyms."""

    def __init__(self, key: bytes) -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise AuditKeyError(
                f"the subject pseudonym key must be at least {_MIN_KEY_BYTES} bytes"
            )
        self._key = bytes(key)

    def pseudonym(self, subject_id: str) -> str:
        """The pseudonym of `subject_id` (exact string; no case or space folding)."""
        digest = hmac.new(self._key, _DOMAIN + subject_id.encode("utf-8"), hashlib.sha256)
        return "sp_" + digest.hexdigest()[:32]


def load_pseudonym_key(path: Path) -> bytes:
    """Read an existing pseudonym key. A missing key is an error, never silently made:
    a new key would give every subject a different pseudonym and hide their records."""
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise AuditKeyError(
            f"cannot read the subject pseudonym key {path}: {exc.strerror or exc}"
        ) from exc
    if len(key) < _MIN_KEY_BYTES:
        raise AuditKeyError(
            f"{path} is not a subject pseudonym key (expected {PSEUDONYM_KEY_BYTES} bytes)"
        )
    return key


def load_or_create_pseudonym_key(path: Path) -> bytes:
    """Read the key at `path`, or create it (32 random bytes, mode 0600) on first start."""
    if path.exists():
        return load_pseudonym_key(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(PSEUDONYM_KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it between our check and open: use theirs.
        return load_pseudonym_key(path)
    except OSError as exc:
        raise AuditKeyError(f"cannot create the subject pseudonym key {path}: {exc}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    return key
