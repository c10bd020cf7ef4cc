"""API keys, stored only as SHA-256 digests, each bound to one agency and its roles.

A keys file is YAML:

    keys:
      - id: county-general-publisher      # shown in the audit log, never the key itself
        agency: county-general
        roles: [publish]
        sha256: 3b1f…                       # `handoff keys hash` prints it for a key
        expires_at: 2027-01-01T00:00:00Z  # optional: refused from then on
        revoked_at: 2026-11-08T09:00:00Z  # optional: refused from then on
      - id: county-general-mtls
        agency: county-general
        roles: [publish]
        mtls_subject: ehr.county-general.example.org   # a client certificate's CN or SAN

`handoff keys issue|list|rotate|revoke` edit the file (`broker.auth.keyfile`); a running
broker reads it again when it changes (`FileKeyRing`).

Keys are long random strings, so an unsalted SHA-256 is a sound verifier: there is
nothing to brute-force that a salt would protect.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from broker.errors import ConfigError


class Role(StrEnum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"
    ADMIN = "admin"
    AUDITOR = "auditor"
    STEWARD = "steward"
    """A data steward: decides clerical review items, unlinks and merges persons (record
    linkage). Not an operator (admin) and not a reader of the audit log (auditor)."""
    EVALUATOR = "evaluator"
    """Reads aggregate reports only (the referral funnel), never person-level data."""


class ApiKey(BaseModel):
    """One entry of the keys file: a hashed API key or a client-certificate subject."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100, pattern=r"^\S+$")
    agency: str = Field(min_length=1)
    roles: frozenset[Role]
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    mtls_subject: str | None = Field(default=None, min_length=1, max_length=400)
    created_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None
    replaces: str | None = None
    """The id of the key this one rotated out, for the operator's benefit."""

    @model_validator(mode="after")
    def _one_credential(self) -> ApiKey:
        if (self.sha256 is None) == (self.mtls_subject is None):
            raise ValueError("give exactly one of 'sha256' (an API key's digest) or "
                             "'mtls_subject' (a client certificate's CN or SAN)")
        return self

    def status(self, now: float) -> str:
        """`active`, `expired` or `revoked` at `now` (seconds since the epoch)."""
        if self.revoked_at is not None and self.revoked_at.timestamp() <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at.timestamp() <= now:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    key_id: str
    agency: str
    roles: frozenset[Role]

    def has(self, role: Role) -> bool:
        return role in self.roles


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What a presented credential turned out to be.

    `principal` is set when it may be used. A known key that may no longer be used
    (expired or revoked) leaves `principal` unset but names the key in `key` so the
    refusal can be attributed in the audit log.
    """

    principal: Principal | None
    key: ApiKey | None = None
    reason: str = "missing or unknown API key"


UNKNOWN = KeyCheck(None)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class KeyRing:
    """Looks up the principal for a presented key or client-certificate subject."""

    def __init__(self, keys: Iterable[ApiKey] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._by_digest: dict[str, ApiKey] = {}
        self._by_subject: dict[str, ApiKey] = {}
        self._by_id: dict[str, ApiKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: ApiKey) -> None:
        self._by_id[key.id] = key
        if key.sha256 is not None:
            self._by_digest[key.sha256] = key
        if key.mtls_subject is not None:
            self._by_subject[key.mtls_subject] = key

    def check(self, secret: str) -> KeyCheck:
        """Look up an API key. Expired and revoked keys are named but not admitted."""
        # Looking up the digest, not the secret, keeps the comparison free of timing
        # leaks about the secret itself.
        return self._admit(self._by_digest.get(hash_key(secret)))

    def check_digest(self, digest: str) -> KeyCheck:
        """Look up a key by its digest, as kept by a session opened with it, so a key
        expired or revoked since ends its sessions."""
        return self._admit(self._by_digest.get(digest))

    def check_subject(self, names: Iterable[str]) -> KeyCheck:
        """Look up a verified client certificate by any of its names (CN, SANs)."""
        for name in names:
            key = self._by_subject.get(name)
            if key is not None:
                return self._admit(key)
        return KeyCheck(None, reason="client certificate not mapped to an agency")

    def authenticate(self, secret: str) -> Principal | None:
        return self.check(secret).principal

    def lapsed(self, principal: Principal) -> str | None:
        """Why the key `principal` was admitted with no longer admits it (`key_revoked`,
        `key_expired`, `key_removed`, or `key_changed` when its agency or roles changed),
        or None while it still does. Open streams and long polls ask as they run."""
        key = self._by_id.get(principal.key_id)
        if key is None:
            return "key_removed"
        status = key.status(self._clock())
        if status != "active":
            return f"key_{status}"
        if key.agency != principal.agency or not principal.roles <= key.roles:
            return "key_changed"
        return None

    def _admit(self, key: ApiKey | None) -> KeyCheck:
        if key is None:
            return UNKNOWN
        status = key.status(self._clock())
        if status != "active":
            return KeyCheck(None, key, f"key {status}")
        return KeyCheck(Principal(key.id, key.agency, key.roles), key, "")

    def __len__(self) -> int:
        return len(self._by_digest) + len(self._by_subject)


def parse_keys(data: Any, source: str) -> list[ApiKey]:
    """Validate the parsed YAML of a keys file; every bad entry and field is named."""
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: expected a top-level 'keys:' list")
    keys: list[ApiKey] = []
    problems: list[str] = []
    for i, entry in enumerate(entries):
        try:
            keys.append(ApiKey.model_validate(entry))
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                where = f"keys[{i}].{loc}" if loc else f"keys[{i}]"
                problems.append(f"{source}: {where}: {err['msg']}")
    seen: set[str] = set()
    for key in keys:
        if key.id in seen:
            problems.append(f"{source}: key id '{key.id}' appears twice")
        seen.add(key.id)
    if problems:
        raise ConfigError("; ".join(problems))
    return keys


def read_keys(path: Path) -> list[ApiKey]:
    """The entries of a keys file; a missing file has none."""
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {"keys": []}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML in keys file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read keys file: {exc.strerror}") from exc
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML in keys file: nested too deeply") from None
    return parse_keys(data, str(path))


def load_keyring(path: Path) -> KeyRing:
    """Read a keys file once. A missing file gives an empty ring (every call is refused)."""
    return KeyRing(read_keys(path))


def utc_text(moment: datetime) -> str:
    """How the keys file writes a time: ISO 8601 in UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
