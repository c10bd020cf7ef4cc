"""The schema registry: versioned Avro schemas per subject, with global ids.

Modelled on Confluent Schema Registry. A subject (usually one per event type) holds
versions 1, 2, 3, ...; each distinct schema text gets one global id, shared by every
subject that registers it, and that id is what the wire format carries. A new version is
accepted only if it keeps the subject's `CompatibilityLevel` (BACKWARD by default).

State lives in memory and is written through to a `RegistryStore`, so it survives
restarts. Reads take no lock; writes are serialised by one, and replace the dictionaries
readers iterate rather than changing them in place.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.compatibility import (
    NAMED_KINDS,
    PRIMITIVES,
    CompatibilityLevel,
    incompatibilities,
    parse_for_resolution,
)
from schemas.decoding_safety import decoding_hazards
from schemas.errors import IncompatibleSchemaError, SchemaError, UnknownSchemaError
from schemas.store import RegistryStore, StoredSchema
from schemas.wire import MAX_SCHEMA_ID

LATEST: Literal["latest"] = "latest"
MAX_SUBJECT_LENGTH = 255
_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

VersionSelector = int | Literal["latest"]


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """One version of one subject."""

    subject: str
    version: int
    schema_id: int
    schema: str = field(repr=False)
    """Canonical JSON text of the schema (sorted keys, no whitespace)."""

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

    def subjects(self) -> list[str]:
        """Every subject with at least one version, sorted."""
        return sorted(self._versions)

    def versions(self, subject: str) -> list[int]:
        """The subject's version numbers, ascending. Raises `UnknownSchemaError`."""
        return sorted(self._subject_versions(subject))

    def get(self, subject: str, version: VersionSelector = LATEST) -> RegisteredSchema:
        """One version of a subject (`"latest"` or -1 for the newest).

        Raises `UnknownSchemaError`.
        """
        versions = self._subject_versions(subject)
        if version == LATEST or version == -1:
            return versions[max(versions)]
        found = versions.get(version) if isinstance(version, int) else None
        if found is None:
            raise UnknownSchemaError(f"subject '{subject}' has no version {version}")
        return found

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with a global id, as first registered (an id shared by several
        subjects names the same schema text). Raises `UnknownSchemaError`."""
        registered = self._by_id.get(schema_id)
        if registered is None:
            self.refresh()
            registered = self._by_id.get(schema_id)
        if registered is None:
            raise UnknownSchemaError(f"no schema has id {schema_id}")
        return registered

    def parsed(self, schema_id: int) -> Any:
        """The schema with this id, parsed by fastavro once and cached.

        Raises `UnknownSchemaError`.
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

    def check(
        self, subject: str, schema: Mapping[str, Any] | str, version: VersionSelector = LATEST
    ) -> list[str]:
        """List why `schema` would be refused as the subject's next version (empty: fine).

        With `"latest"` the subject's level decides which versions are compared (all of
        them for the transitive levels); with a number only that version is. Raises
        `SchemaError` for an invalid schema.
        """
        _check_subject(subject)
        _, parsed = _prepare(schema)
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
        canonical, parsed = _prepare(schema)
        with self._lock:
            versions = self._versions.get(subject, {})
            for existing in versions.values():
                if existing.schema == canonical:
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
            schema_id = self._ids.get(canonical)
            if schema_id is None:
                schema_id = self._new_id(canonical)
            stored = StoredSchema(subject, max(versions, default=0) + 1, schema_id, canonical)
            self._store.save_schema(stored)
            self._parsed.setdefault(schema_id, parsed)
            return self._remember(stored)

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
            if known is None:
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

    def _subject_versions(self, subject: str) -> dict[int, RegisteredSchema]:
        versions = self._versions.get(subject)
        if not versions:
            self.refresh()
            versions = self._versions.get(subject)
        if not versions:
            raise UnknownSchemaError(f"unknown subject '{subject}'")
        return versions

    def _remember(self, stored: StoredSchema) -> RegisteredSchema:
        registered = RegisteredSchema(
            stored.subject, stored.version, stored.schema_id, stored.schema
        )
        self._by_id.setdefault(stored.schema_id, registered)
        self._ids.setdefault(stored.schema, stored.schema_id)
        versions = {**self._versions.get(stored.subject, {}), stored.version: registered}
        self._versions = {**self._versions, stored.subject: versions}
        return registered

    def _problems_against(self, subject: str, parsed: Any, level: CompatibilityLevel) -> list[str]:
        versions = self._versions.get(subject)
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


TOO_DEEP = "schema is nested too deeply"


def _prepare(schema: Mapping[str, Any] | str | list[Any]) -> tuple[str, Any]:
    """Validate a schema and return (canonical JSON text, fastavro-parsed schema)."""
    try:
        return _prepare_unguarded(schema)
    except RecursionError:
        # Nesting only bounded by the stack: refused like any other invalid schema.
        raise SchemaError(TOO_DEEP) from None


def _prepare_unguarded(schema: Mapping[str, Any] | str | list[Any]) -> tuple[str, Any]:
    try:
        value = json.loads(schema) if isinstance(schema, str) else json.loads(json.dumps(schema))
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"schema is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"schema is not JSON-serialisable: {exc}") from exc
    parsed = parse_for_resolution(value, {})
    problems: list[str] = []
    _structure_problems(parsed, "", problems)
    problems += decoding_hazards(parsed)
    if problems:
        raise SchemaError("invalid schema: " + "; ".join(problems))
    return json.dumps(value, sort_keys=True, separators=(",", ":")), parsed


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and all(_AVRO_NAME.match(part) for part in name.split("."))


def _union_branch_key(branch: Any) -> str:
    if isinstance(branch, str):
        return branch
    kind = str(branch.get("type"))
    return str(branch.get("name")) if kind in NAMED_KINDS else kind


def _structure_problems(node: Any, path: str, found: list[str]) -> None:
    """Rules of the Avro specification that fastavro's parser does not enforce."""
    where = path or "<root>"
    if isinstance(node, list):
        if not node:
            found.append(f"{where}: a union needs at least one type")
        seen: set[str] = set()
        for branch in node:
            if isinstance(branch, list):
                found.append(f"{where}: a union may not directly contain another union")
                continue
            key = _union_branch_key(branch)
            if key in seen:
                found.append(f"{where}: union lists {key} more than once")
            seen.add(key)
            _structure_problems(branch, path, found)
        return
    if not isinstance(node, Mapping):
        return
    kind = node.get("type")
    if kind in NAMED_KINDS and not _valid_name(node.get("name")):
        found.append(f"{where}: {kind} name is not a valid Avro name")
    if kind in ("record", "error"):
        names: set[str] = set()
        for field in node.get("fields", []):
            name = field.get("name")
            field_path = f"{path}.{name}" if path else str(name)
            if not _valid_name(name) or "." in str(name):
                found.append(f"{field_path}: field name is not a valid Avro name")
            elif name in names:
                found.append(f"{field_path}: field appears more than once")
            names.add(str(name))
            _structure_problems(field.get("type"), field_path, found)
    elif kind == "enum":
        symbols = node.get("symbols")
        if not isinstance(symbols, list) or not symbols:
            found.append(f"{where}: enum symbols must be a non-empty list")
        elif not all(_valid_name(s) and "." not in s for s in symbols):
            found.append(f"{where}: enum symbols must be valid Avro names")
        elif "default" in node and node["default"] not in symbols:
            found.append(f"{where}: enum default is not one of its symbols")
    elif kind == "fixed":
        size = node.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            found.append(f"{where}: fixed size must be a non-negative integer")
    elif kind == "array":
        _structure_problems(node.get("items"), f"{path}[]", found)
    elif kind == "map":
        _structure_problems(node.get("values"), f"{path}{{}}", found)
    elif not isinstance(kind, str) or kind not in PRIMITIVES:
        found.append(f"{where}: unknown type")
