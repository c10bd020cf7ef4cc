"""The event types the broker accepts, with each registered version's wire schema id.

The registry is the source of truth: at start every built-in schema is registered
(idempotently) under `events.<type>-value`, and versions registered later through the
API are loaded back from the registry, so both survive restarts.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from schemas.catalog import EventSchema, SchemaCatalog, build_event_schema
from schemas.errors import UnknownSchemaError
from schemas.registry import SchemaRegistry

SUBJECT_SUFFIX = "-value"


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
    def __init__(self, registry: SchemaRegistry, builtin: SchemaCatalog) -> None:
        self._registry = registry
        self.catalog = SchemaCatalog()
        self._latest: dict[str, RegisteredEvent] = {}
        self._by_id: dict[int, RegisteredEvent] = {}
        self._lock = threading.Lock()
        for event_type in builtin.event_types():
            for version in builtin.versions(event_type):
                schema = builtin.get(event_type, version)
                if not self._already_registered(event_type, schema):
                    registry.register(event_subject(event_type), dict(schema.schema))
        for subject in registry.subjects():
            registered_type = event_type_of_subject(subject)
            if registered_type is None:
                continue
            for version in registry.versions(subject):
                entry = registry.get(subject, version)
                self._index(registered_type, entry.version, entry.schema_id,
                            json.loads(entry.schema))

    def _already_registered(self, event_type: str, schema: EventSchema) -> bool:
        subject = event_subject(event_type)
        if subject not in self._registry.subjects():
            return False
        canonical = schema.canonical_json()
        return any(
            self._registry.get(subject, version).schema == canonical
            for version in self._registry.versions(subject)
        )

    def _index(self, event_type: str, version: int, schema_id: int, schema_json: dict) -> None:
        schema = build_event_schema(event_type, schema_json, version)
        entry = RegisteredEvent(event_type, version, schema_id, schema)
        with self._lock:
            self.catalog.add(schema)
            self._by_id[schema_id] = entry
            current = self._latest.get(event_type)
            if current is None or version > current.version:
                self._latest[event_type] = entry

    def add_version(self, event_type: str, schema_json: dict) -> RegisteredEvent:
        """Register a new version (tags checked first, then compatibility)."""
        build_event_schema(event_type, schema_json)
        entry = self._registry.register(event_subject(event_type), schema_json)
        self._index(event_type, entry.version, entry.schema_id, schema_json)
        return self._by_id[entry.schema_id]

    def latest(self, event_type: str) -> RegisteredEvent:
        try:
            return self._latest[event_type]
        except KeyError:
            raise UnknownSchemaError(f"unknown event type '{event_type}'") from None

    def by_id(self, schema_id: int) -> RegisteredEvent | None:
        return self._by_id.get(schema_id)

    def names(self) -> list[str]:
        return sorted(self._latest)

    def known(self, event_type: str) -> bool:
        return event_type in self._latest
