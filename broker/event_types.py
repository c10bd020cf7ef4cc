"""The event types the broker accepts, with each registered version's wire schema id.

The registry is the source of truth: at start every schema file (the shipped ones and
those of the `schema_dir` setting) is registered (idempotently) under
`events.<type>-value`, and versions registered later through the API are loaded back
from the registry, so both survive restarts.

A type becomes known only after `on_new_type` has run for it (bootstrap makes its
ingress topic there), so a publish can never reach a topic that does not exist yet.
Other processes learn of new types and versions with `refresh` (the router calls it
between batches) or on a miss (`known`, `by_id`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from schemas.catalog import EventSchema, SchemaCatalog, build_event_schema
from schemas.errors import UnknownSchemaError
from schemas.registry import SchemaRegistry

SUBJECT_SUFFIX = "-value"
MISS_REFRESH_SECONDS = 1.0
"""Shortest time between two registry reads caused by lookups of unknown types."""


def event_subject(event_type: str) -> str:
    return f"events.{event_type}{SUBJECT_SUFFIX}"


def event_type_of_subject(subject: str) -> str | None:
    if subject.startswith("events.") and subject.endswith(SUBJECT_SUFFIX):
        return subject[len("events."):-len(SUBJECT_SUFFIX)]
    return None


@dataclass(frozen=True, slots=True)
class RegisteredEvent:
    event_type: str
    version: int
    schema_id: int
    schema: EventSchema


class EventTypes:
    def __init__(self, registry: SchemaRegistry, builtin: SchemaCatalog,
                 on_new_type: Callable[[str], None] | None = None) -> None:
        self._registry = registry
        self._on_new_type = on_new_type or (lambda _: None)
        self.catalog = SchemaCatalog()
        self._versions: dict[str, dict[int, RegisteredEvent]] = {}
        self._latest: dict[str, RegisteredEvent] = {}
        self._by_id: dict[int, RegisteredEvent] = {}
        self._lock = threading.RLock()
        self._live: dict[str, set[int]] = {}
        """Per type, the versions not soft-deleted."""
        self._next_miss_refresh = 0.0
        self.register_files(builtin)
        self._load()

    def register_files(self, schemas: SchemaCatalog) -> list[str]:
        """Register every version of every type in `schemas` not registered yet (a
        version deleted through the API stays deleted); returns the new types."""
        before = set(self._latest)
        for event_type in schemas.event_types():
            for version in schemas.versions(event_type):
                schema = schemas.get(event_type, version)
                if not self._already_registered(event_type, schema):
                    self._registry.register(event_subject(event_type), dict(schema.schema))
        self._load()
        return sorted(set(self._latest) - before)

    def _already_registered(self, event_type: str, schema: EventSchema) -> bool:
        subject = event_subject(event_type)
        if subject not in self._registry.subjects(include_deleted=True):
            return False
        canonical = schema.canonical_json()
        return any(
            self._registry.get(subject, version, include_deleted=True).schema == canonical
            for version in self._registry.versions(subject, include_deleted=True)
        )

    def _load(self) -> None:
        """Index every event subject's versions as the registry has them now."""
        with self._lock:
            for subject in self._registry.subjects(include_deleted=True):
                event_type = event_type_of_subject(subject)
                if event_type is None:
                    continue
                for version in self._registry.versions(subject, include_deleted=True):
                    entry = self._registry.get(subject, version, include_deleted=True)
                    known = self._versions.get(event_type, {}).get(version)
                    if known is None:
                        known = self._index(event_type, entry.version, entry.schema_id,
                                            json.loads(entry.schema))
                    self._set_live(known, not entry.deleted)

    def _index(self, event_type: str, version: int, schema_id: int, schema_json: dict
               ) -> RegisteredEvent:
        schema = build_event_schema(event_type, schema_json, version)
        entry = RegisteredEvent(event_type, version, schema_id, schema)
        with self._lock:
            self.catalog.add(schema)
            self._by_id[schema_id] = entry
            self._versions.setdefault(event_type, {})[version] = entry
        return entry

    def _set_live(self, entry: RegisteredEvent, live: bool) -> None:
        """Count a version towards its type's latest, or (soft-deleted) not."""
        event_type = entry.event_type
        with self._lock:
            live_versions = self._live.setdefault(event_type, set())
            (live_versions.add if live else live_versions.discard)(entry.version)
            if not live_versions:
                self._latest.pop(event_type, None)
                return
            newest = self._versions[event_type][max(live_versions)]
            if event_type not in self._latest:
                self._on_new_type(event_type)   # its topics first, then it is known
            self._latest[event_type] = newest

    def add_version(self, event_type: str, schema_json: dict) -> RegisteredEvent:
        """Register a new version (tags checked first, then compatibility); a new type
        gets what it needs (its ingress topic) before it is accepted."""
        build_event_schema(event_type, schema_json)
        entry = self._registry.register(event_subject(event_type), schema_json)
        self._load()
        return self._by_id[entry.schema_id]

    def deleted(self) -> None:
        """Take account of versions soft-deleted in the registry."""
        self._load()

    def refresh(self) -> list[str]:
        """Pick up types and versions other processes registered; returns new types."""
        before = set(self._latest)
        self._registry.refresh()
        self._load()
        return sorted(set(self._latest) - before)

    def latest(self, event_type: str) -> RegisteredEvent:
        try:
            return self._latest[event_type]
        except KeyError:
            raise UnknownSchemaError(f"unknown event type '{event_type}'") from None

    def by_id(self, schema_id: int) -> RegisteredEvent | None:
        """The version with this wire schema id. A miss reads the registry again: the
        id was written by a publisher, so another process may just have registered it
        (ingress records are never refused for being early)."""
        found = self._by_id.get(schema_id)
        if found is None:
            self.refresh()
            found = self._by_id.get(schema_id)
        return found

    def names(self) -> list[str]:
        return sorted(self._latest)

    def known(self, event_type: str) -> bool:
        if event_type in self._latest:
            return True
        return self._miss_refresh() and event_type in self._latest

    def _miss_refresh(self) -> bool:
        """Read the registry again after a miss, at most once a second (misses can be
        sent by anyone holding a key)."""
        now = time.monotonic()
        if now < self._next_miss_refresh:
            return False
        self._next_miss_refresh = now + MISS_REFRESH_SECONDS
        self.refresh()
        return True
