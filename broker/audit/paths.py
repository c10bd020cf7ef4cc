"""Where the embedded broker keeps its audit files under the data directory.

The runtime and `handoff audit` both take paths from here, so they always agree.
"""

from __future__ import annotations

from pathlib import Path

AUDIT_DB_NAME = "audit.db"
KAFKA_INDEX_NAME = "audit-index.db"
"""On the Kafka backend: each process's local index of the audit log, a cache."""
KEYS_DIR_NAME = "keys"
SIGNING_KEY_NAME = "audit-signing.pem"
PSEUDONYM_KEY_NAME = "subject-pseudonym.key"


def audit_db_path(data_dir: Path) -> Path:
    """The SQLite audit store: `<data dir>/audit.db`."""
    return data_dir / AUDIT_DB_NAME


def signing_key_path(data_dir: Path) -> Path:
    """The Ed25519 checkpoint signing key (PEM, 0600): `<data dir>/keys/audit-signing.pem`."""
    return data_dir / KEYS_DIR_NAME / SIGNING_KEY_NAME


def public_key_path(private_key_path: Path) -> Path:
    """Where the public half of a signing key is written: beside it, with `.pub` added."""
    return private_key_path.with_name(private_key_path.name + ".pub")


def signing_public_key_path(data_dir: Path) -> Path:
    """The checkpoint verification key: `<data dir>/keys/audit-signing.pem.pub`."""
    return public_key_path(signing_key_path(data_dir))


def pseudonym_key_path(data_dir: Path) -> Path:
    """The subject pseudonym key (32 random bytes): `<data dir>/keys/subject-pseudonym.key`."""
    return data_dir / KEYS_DIR_NAME / PSEUDONYM_KEY_NAME
