"""The schema registry: versioned Avro schemas per subject, with global ids.

Modelled on Confluent Schema Registry. A subject (usually one per event type) holds
versions 1, 2, 3, ...; each distinct schema text gets one global id, shared by every
subject that registers it, and that id is what the wire format carries. A new version is
accepted only if it keeps the subject's `CompatibilityLevel` (BACKWARD by default).

A version can be soft-deleted, as in Confluent's registry: it leaves the subject's
listings, lookups and `latest`, while its id still resolves, so records written with it
stay readable. Nothing is ever deleted for good.

State lives in memory and is written through to a `RegistryStore`, so it survives
restarts. Reads take no lock; writes are serialised by one, and replace the dictionaries
readers iterate rather than changing them in place.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fastavro.schema import to_parsing_canonical_form

from schemas.avro_rules import TOO_DEEP, prepare
from schemas.compatibility import CompatibilityLevel, incompatibilities, parse_for_resolution
from schemas.errors import (
    IncompatibleSchemaError,
    SchemaError,
    UnknownSchemaIdError,
    UnknownSubjectError,
    UnknownVersionError,
)
from schemas.store import RegistryStore, StoredSchema
from schemas.wire import MAX_SCHEMA_ID

LATEST: Literal["latest"] = "latest"
MAX_SUBJECT_LENGTH = 255

VersionSelector = int | Literal["latest"]


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """One version of one subject."""

    subject: str
    version: int
    schema_id: int
    schema: str = field(repr=False)
    """Canonical JSON text of the schema (sorted keys, no whitespace)."""
    deleted: bool = False
    """Soft-deleted: out of listings and lookups, still resolvable by id."""

    def as_json(self) -> Any:
        """The schema as JSON values (a fresh copy on every call)."""
        return json.loads(self.schema)


def _level(value: CompatibilityLevel | str) -> CompatibilityLevel:
    try:
        return CompatibilityLevel(str(value).upper())
    except ValueError:
        allowed = ", ".join(level.value for level in CompatibilityLevel)
        raise SchemaError(f"unknown compatibility level {value!r}; use one of {allowed}") from None


def _check_subject(subject: object) -> str:
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise SchemaError(f"a subject is a non-empty string of at most {MAX_SUBJECT_LENGTH} chars")
    if not subject.isprintable():
        raise SchemaError("a subject may not contain control characters")
    return subject


def _resolution_form(canonical: str) -> str | None:
    """Avro's Parsing Canonical Form: what decides how bytes are read, without docs,
    defaults or Handoff's tags."""
    try:
        return str(to_parsing_canonical_form(json.loads(canonical)))
    except (ValueError, TypeError, KeyError):
        return None


class SchemaRegistry:
    """Versioned, compatibility-checked Avro schemas, persisted through a `RegistryStore`."""

    def __init__(
        self,
        store: RegistryStore,
        default_compatibility: CompatibilityLevel | str = CompatibilityLevel.BACKWARD,
    ) -> None:
        self._store = store
        self._lock = threading.Lock()
        snapshot = store.load()
        self._versions: dict[str, dict[int, RegisteredSchema]] = {}
        self._by_id: dict[int, RegisteredSchema] = {}
        self._ids: dict[str, int] = {}
        self._parsed: dict[int, Any] = {}
        levels = dict(snapshot.compatibility)
        self._default = _level(levels.pop(None, default_compatibility))
        self._levels: dict[str, CompatibilityLevel] = {
            subject: _level(level) for subject, level in levels.items() if subject is not None
        }
        for stored in sorted(snapshot.schemas, key=lambda s: (s.schema_id, s.subject, s.version)):
            self._remember(stored)

    # -- reading ---------------------------------------------------------------------

    def subjects(self, include_deleted: bool = False) -> list[str]:
        """Every subject with at least one version (not soft-deleted, unless asked), sorted;
        with those other processes saved since (the router process registers the view
        schemas)."""
        self.refresh()
        return sorted(s for s, versions in self._versions.items()
                      if include_deleted or any(not v.deleted for v in versions.values()))

    def versions(self, subject: str, include_deleted: bool = False) -> list[int]:
        """The subject's version numbers, ascending. Raises `UnknownSubjectError`."""
        return sorted(self._subject_versions(subject, include_deleted))

    def get(self, subject: str, version: VersionSelector = LATEST,
            include_deleted: bool = False) -> RegisteredSchema:
        """One version of a subject (`"latest"` or -1 for the newest).

        Raises `UnknownSubjectError` or `UnknownVersionError`.
        """
        versions = self._subject_versions(subject, include_deleted)
        if version == LATEST or version == -1:
            return versions[max(versions)]
        found = versions.get(version) if isinstance(version, int) else None
        if found is None:
            raise UnknownVersionError(f"subject '{subject}' has no version {version}")
        return found

    def lookup(self, subject: str, schema: Mapping[str, Any] | str,
               include_deleted: bool = False) -> RegisteredSchema:
        """The version of `subject` holding this schema: the same text, else (the newest)
        one read and written the same way (same Parsing Canonical Form), so a client that
        drops documentation or tags still finds the version it writes.

        Raises `UnknownSubjectError`, `UnknownSchemaIdError` when no version matches, and
        `SchemaError` for an invalid schema.
        """
        canonical, _ = prepare(schema)
        versions = self._subject_versions(subject, include_deleted)
        for number in sorted(versions, reverse=True):
            if versions[number].schema == canonical:
                return versions[number]
        wanted = _resolution_form(canonical)
        for number in sorted(versions, reverse=True):
            if wanted is not None and _resolution_form(versions[number].schema) == wanted:
                return versions[number]
        raise UnknownSchemaIdError(f"subject '{subject}' has no version with this schema")

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with a global id, as first registered (an id shared by several
        subjects names the same schema text). Soft-deleted versions still resolve.
        Raises `UnknownSchemaIdError`."""
        registered = self._by_id.get(schema_id)
        if registered is None:
            self.refresh()
            registered = self._by_id.get(schema_id)
        if registered is None:
            raise UnknownSchemaIdError(f"no schema has id {schema_id}")
        return registered

    def usages(self, schema_id: int, include_deleted: bool = False
               ) -> list[RegisteredSchema]:
        """Every (subject, version) holding the schema with this id, sorted.
        Raises `UnknownSchemaIdError`."""
        text = self.by_id(schema_id).schema
        return sorted(
            (v for versions in self._versions.values() for v in versions.values()
             if v.schema == text and (include_deleted or not v.deleted)),
            key=lambda v: (v.subject, v.version))

    def parsed(self, schema_id: int) -> Any:
        """The schema with this id, parsed by fastavro once and cached.

        Raises `UnknownSchemaIdError`.
        """
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            parsed = parse_for_resolution(json.loads(self.by_id(schema_id).schema), {})
            self._parsed[schema_id] = parsed
        return parsed

    def compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """The subject's compatibility level, or the registry-wide default."""
        if subject is None:
            return self._default
        return self._levels.get(subject, self._default)

    def has_own_compatibility(self, subject: str) -> bool:
        """Whether the subject has a level of its own (not the default)."""
        return subject in self._levels

    def check(
        self, subject: str, schema: Mapping[str, Any] | str, version: VersionSelector = LATEST
    ) -> list[str]:
        """List why `schema` would be refused as the subject's next version (empty: fine).

        With `"latest"` the subject's level decides which versions are compared (all of
        them for the transitive levels); with a number only that version is. Raises
        `SchemaError` for an invalid schema.
        """
        _check_subject(subject)
        _, parsed = prepare(schema)
        level = self.compatibility(subject)
        try:
            if version == LATEST or version == -1:
                return self._problems_against(subject, parsed, level)
            old = self.get(subject, version)
            return incompatibilities(parsed, self.parsed(old.schema_id), level)
        except RecursionError:
            raise SchemaError(TOO_DEEP) from None

    # -- writing ---------------------------------------------------------------------

    def register(self, subject: str, schema: Mapping[str, Any] | str) -> RegisteredSchema:
        """Add a schema as the subject's next version, or return it if already there.

        Raises `SchemaError` for an invalid schema and `IncompatibleSchemaError`, listing
        every problem with its field path, when it breaks the subject's level.
        """
        _check_subject(subject)
        canonical, parsed = prepare(schema)
        with self._lock:
            versions = self._versions.get(subject, {})
            for existing in versions.values():
                if existing.schema == canonical and not existing.deleted:
                    return existing
            level = self.compatibility(subject)
            try:
                problems = self._problems_against(subject, parsed, level)
            except RecursionError:
                raise SchemaError(TOO_DEEP) from None
            if problems:
                raise IncompatibleSchemaError(
                    f"schema is not {level.value} compatible with subject '{subject}': "
                    + "; ".join(problems)
                )
            self._refresh_locked()
            versions = self._versions.get(subject, {})
            schema_id = self._ids.get(canonical)
            if schema_id is None:
                schema_id = self._new_id(canonical)
            stored = StoredSchema(subject, max(versions, default=0) + 1, schema_id, canonical)
            self._store.save_schema(stored)
            self._parsed.setdefault(schema_id, parsed)
            return self._remember(stored)

    def delete(self, subject: str, version: VersionSelector | None = None) -> list[int]:
        """Soft-delete one version of a subject, or (`version=None`) all of them; returns
        the version numbers deleted. Raises `UnknownSubjectError`, `UnknownVersionError`."""
        self.refresh()
        with self._lock:
            versions = self._subject_versions(subject, refresh=False)
            if version is None:
                targets = [versions[n] for n in sorted(versions)]
            else:
                number = max(versions) if version in (LATEST, -1) else version
                if number not in versions:
                    raise UnknownVersionError(f"subject '{subject}' has no version {version}")
                targets = [versions[number]]
            for target in targets:
                stored = StoredSchema(target.subject, target.version, target.schema_id,
                                      target.schema, deleted=True)
                self._store.save_schema(stored)
                self._remember(stored)
            return [t.version for t in targets]

    def set_compatibility(self, subject: str | None, level: CompatibilityLevel | str) -> None:
        """Set a subject's compatibility level (`subject=None`: the registry-wide default)."""
        if subject is not None:
            _check_subject(subject)
        chosen = _level(level)
        with self._lock:
            self._store.save_compatibility(subject, chosen)
            if subject is None:
                self._default = chosen
            else:
                self._levels = {**self._levels, subject: chosen}

    def refresh(self) -> None:
        """Pick up versions other processes saved to the store since this one loaded."""
        with self._lock:
            self._refresh_locked()

    # -- internals -------------------------------------------------------------------

    def _refresh_locked(self) -> None:
        snapshot = self._store.load()
        for stored in sorted(snapshot.schemas, key=lambda s: (s.schema_id, s.subject, s.version)):
            known = self._versions.get(stored.subject, {}).get(stored.version)
            if known is None or known.deleted != stored.deleted:
                self._remember(stored)
        levels = dict(snapshot.compatibility)
        if None in levels:
            self._default = _level(levels.pop(None))
        self._levels = {**self._levels, **{s: _level(v) for s, v in levels.items()
                                           if s is not None}}

    def _new_id(self, canonical: str) -> int:
        """An id derived from the schema text, so registries in different processes give
        the same schema the same id, and different schemas different ids, without
        coordinating. A clash with another text moves to the next free id."""
        digest = hashlib.sha256(canonical.encode("utf-8")).digest()
        schema_id = int.from_bytes(digest[:4], "big") % MAX_SCHEMA_ID or 1
        while schema_id in self._by_id and self._by_id[schema_id].schema != canonical:
            schema_id = schema_id % MAX_SCHEMA_ID + 1
        return schema_id

    def _subject_versions(self, subject: str, include_deleted: bool = False,
                          refresh: bool = True) -> dict[int, RegisteredSchema]:
        def live() -> dict[int, RegisteredSchema]:
            return {n: v for n, v in self._versions.get(subject, {}).items()
                    if include_deleted or not v.deleted}

        versions = live()
        if not versions and refresh:
            self.refresh()
            versions = live()
        if not versions:
            raise UnknownSubjectError(f"unknown subject '{subject}'")
        return versions

    def _remember(self, stored: StoredSchema) -> RegisteredSchema:
        registered = RegisteredSchema(
            stored.subject, stored.version, stored.schema_id, stored.schema, stored.deleted
        )
        first = self._by_id.get(stored.schema_id)
        if first is None or (first.subject, first.version) == (stored.subject, stored.version):
            self._by_id[stored.schema_id] = registered
        self._ids.setdefault(stored.schema, stored.schema_id)
        versions = {**self._versions.get(stored.subject, {}), stored.version: registered}
        self._versions = {**self._versions, stored.subject: versions}
        return registered

    def _problems_against(self, subject: str, parsed: Any, level: CompatibilityLevel) -> list[str]:
        versions = {n: v for n, v in self._versions.get(subject, {}).items() if not v.deleted}
        if not versions or level is CompatibilityLevel.NONE:
            return []
        targets = sorted(versions) if level.transitive else [max(versions)]
        problems: list[str] = []
        for number in targets:
            old = self.parsed(versions[number].schema_id)
            found = incompatibilities(parsed, old, level)
            prefix = f"version {number}: " if level.transitive else ""
            problems.extend(prefix + problem for problem in found)
        return problems
