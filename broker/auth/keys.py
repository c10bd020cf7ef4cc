"""API keys, stored only as SHA-256 digests, each bound to one agency and its roles.

A keys file is YAML:

    keys:
      - id: county-general-publisher      # shown in the audit log, never the key itself
        agency: county-general
        roles: [publish]
        sha256: 3b1f…                       # `handoff keys hash` prints it for a key

Keys are long random strings, so an unsalted SHA-256 is a sound verifier: there is
nothing to brute-force that a salt would protect.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.errors import ConfigError


class Role(StrEnum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    ADMIN = "admin"
    AUDITOR = "auditor"


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100)
    agency: str = Field(min_length=1)
    roles: frozenset[Role]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    key_id: str
    agency: str
    roles: frozenset[Role]

    def has(self, role: Role) -> bool:
        return role in self.roles


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class KeyRing:
    """Looks up the principal for a presented key."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._by_digest: dict[str, Principal] = {}
        for key in keys:
            self.add(key)

    def add(self, key: ApiKey) -> None:
        self._by_digest[key.sha256] = Principal(key.id, key.agency, key.roles)

    def authenticate(self, secret: str) -> Principal | None:
        # Looking up the digest, not the secret, keeps the comparison free of timing leaks
        # about the secret itself.
        return self._by_digest.get(hash_key(secret))

    def __len__(self) -> int:
        return len(self._by_digest)


def load_keyring(path: Path) -> KeyRing:
    """Read a keys file. A missing file gives an empty ring (every call is refused)."""
    if not path.exists():
        return KeyRing()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML in keys file") from exc
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a top-level 'keys:' list")
    keys: list[ApiKey] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        try:
            keys.append(ApiKey.model_validate(entry))
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"{path}: keys[{i}].{loc}: {err['msg']}")
    if problems:
        raise ConfigError("; ".join(problems))
    return KeyRing(keys)
