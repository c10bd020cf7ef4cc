"""Issuing, rotating and revoking API keys: edits of the keys file.

Each edit takes an exclusive lock (`<file>.lock`), reads the file, changes it and writes
it back atomically (a temporary file in the same folder, fsynced, renamed over the old
one) with mode 0600, keeping the comments an operator wrote. A new key is returned to
the caller once and only its SHA-256 digest is stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from broker.auth.keys import ApiKey, Role, hash_key, parse_keys, utc_text
from broker.errors import ConfigError

KEY_PREFIX = "hk_"
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class KeyFileError(ConfigError):
    """A keys-file edit that cannot be made (unknown id, duplicate id, bad duration)."""


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `24h`, `30d` or `2w`."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise KeyFileError(f"'{text}' is not a duration; write e.g. 30m, 24h, 90d or 2w")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_expiry(text: str, now: datetime) -> datetime:
    """An expiry given as a duration from now (`90d`) or an ISO 8601 time."""
    if _DURATION.match(text.strip()):
        return now + parse_duration(text)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise KeyFileError(f"'{text}' is neither a duration (90d) nor an ISO 8601 time"
                           ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class IssuedKey:
    """A key just issued: the secret is shown once and never stored."""

    entry: ApiKey
    secret: str


class KeyFile:
    """The keys file, edited under a lock with atomic rewrites."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._yaml = YAML()
        self._yaml.indent(mapping=2, sequence=4, offset=2)

    def entries(self) -> list[ApiKey]:
        return parse_keys(self._load_doc(), str(self.path))

    def issue(self, agency: str, roles: list[Role], *, key_id: str | None = None,
              expires_at: datetime | None = None, now: datetime | None = None,
              replaces: str | None = None) -> IssuedKey:
        """Add a new key for `agency` holding `roles`."""
        if not roles:
            raise KeyFileError("give at least one --role")
        now = now or datetime.now(UTC)
        with self._editing() as doc:
            ids = {str(e.get("id")) for e in doc["keys"]}
            key_id = key_id or _new_id(agency, ids)
            if key_id in ids:
                raise KeyFileError(f"a key with id '{key_id}' already exists")
            secret = new_secret()
            entry: dict[str, Any] = {
                "id": key_id, "agency": agency,
                "roles": sorted({r.value for r in roles}),
                "sha256": hash_key(secret), "created_at": utc_text(now),
            }
            if expires_at is not None:
                entry["expires_at"] = utc_text(expires_at)
            if replaces is not None:
                entry["replaces"] = replaces
            api_key = ApiKey.model_validate(entry)
            roles_seq = CommentedSeq(entry["roles"])
            roles_seq.fa.set_flow_style()
            doc["keys"].append(CommentedMap({**entry, "roles": roles_seq}))
        return IssuedKey(api_key, secret)

    def rotate(self, key_id: str, overlap: timedelta, *, now: datetime | None = None
               ) -> IssuedKey:
        """Issue a successor to `key_id`; the old key keeps working for `overlap`."""
        now = now or datetime.now(UTC)
        old = self._find(key_id)
        if old.sha256 is None:
            raise KeyFileError(f"'{key_id}' is a client-certificate entry; rotate the "
                               "certificate instead")
        if old.status(now.timestamp()) != "active":
            raise KeyFileError(f"'{key_id}' is {old.status(now.timestamp())}; issue a new "
                               "key instead")
        issued = self.issue(old.agency, sorted(old.roles), expires_at=old.expires_at,
                            now=now, replaces=key_id,
                            key_id=_successor_id(key_id, {e.id for e in self.entries()}))
        ends = now + overlap
        with self._editing() as doc:
            raw = _raw_entry(doc, key_id)
            current = old.expires_at
            if current is None or ends < current:
                raw["expires_at"] = utc_text(ends)
        return issued

    def revoke(self, key_id: str, *, now: datetime | None = None) -> ApiKey:
        """Refuse `key_id` from now on. The entry stays, so its history stays readable."""
        now = now or datetime.now(UTC)
        with self._editing() as doc:
            raw = _raw_entry(doc, key_id)
            if raw.get("revoked_at") is None:
                raw["revoked_at"] = utc_text(now)
        return self._find(key_id)

    def _find(self, key_id: str) -> ApiKey:
        for entry in self.entries():
            if entry.id == key_id:
                return entry
        raise KeyFileError(f"no key with id '{key_id}' in {self.path}")

    def _load_doc(self) -> Any:
        if not self.path.exists():
            return CommentedMap({"keys": CommentedSeq()})
        try:
            doc = self._yaml.load(self.path.read_text(encoding="utf-8"))
        except YAMLError as exc:
            raise ConfigError(f"{self.path}: invalid YAML in keys file") from exc
        except RecursionError:
            raise ConfigError(f"{self.path}: invalid YAML in keys file: nested too deeply"
                              ) from None
        if doc is None:
            doc = CommentedMap({"keys": CommentedSeq()})
        if not isinstance(doc, dict) or not isinstance(doc.get("keys", []), list):
            raise ConfigError(f"{self.path}: expected a top-level 'keys:' list")
        if doc.get("keys") is None:
            doc["keys"] = CommentedSeq()
        return doc

    @contextlib.contextmanager
    def _editing(self) -> Iterator[Any]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = self._load_doc()
            yield doc
            parse_keys(doc, str(self.path))     # never write a file the broker would refuse
            self._write(doc)
        finally:
            os.close(fd)

    def _write(self, doc: Any) -> None:
        out = io.StringIO()
        self._yaml.dump(doc, out)
        folder = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(out.getvalue())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _raw_entry(doc: Any, key_id: str) -> Any:
    for raw in doc["keys"]:
        if isinstance(raw, dict) and raw.get("id") == key_id:
            return raw
    raise KeyFileError(f"no key with id '{key_id}' in the keys file")


def _new_id(agency: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._:-]", "-", agency)[:80]
    while True:
        candidate = f"{base}-{secrets.token_hex(3)}"
        if candidate not in taken:
            return candidate


def _successor_id(key_id: str, taken: set[str]) -> str:
    base = re.sub(r"\.r\d+$", "", key_id)[:90]
    n = 2
    while f"{base}.r{n}" in taken:
        n += 1
    return f"{base}.r{n}"
