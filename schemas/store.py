"""Where the schema registry keeps its state: the `RegistryStore` port.

The registry holds everything in memory and writes through to a store, so registered
schemas and compatibility settings survive a restart. The embedded broker stores them
in a SQLite table, the Kafka backend in a compacted topic; tests use
`InMemoryRegistryStore`.

A store is deliberately dumb: it never interprets schemas, assigns ids or checks
compatibility. The registry does that, under its own lock, and calls the store with
finished facts. A store only has to remember them and give them all back from `load`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from schemas.compatibility import CompatibilityLevel


@dataclass(frozen=True, slots=True)
class StoredSchema:
    """One version of one subject, exactly as the registry accepted it."""

    subject: str
    version: int
    """1, 2, 3, ... within the subject."""
    schema_id: int
    """Global id, shared by every subject that registered the same schema text."""
    schema: str
    """Canonical JSON text of the schema (sorted keys, no whitespace)."""
    deleted: bool = False
    """Soft-deleted (saved again with the flag set): out of listings, still readable."""


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """Everything a store holds, as returned by `RegistryStore.load`."""

    schemas: tuple[StoredSchema, ...] = ()
    """Every stored version, in any order."""
    compatibility: dict[str | None, CompatibilityLevel] = field(default_factory=dict)
    """Compatibility level per subject; the key `None` holds the registry-wide default."""


class RegistryStore(Protocol):
    """Persistence for the schema registry.

    Guarantees a store must give:

    - `save_schema` and `save_compatibility` are durable when they return; if they raise,
      nothing was saved and the registry does not change its in-memory state either.
    - `load` returns every schema version and compatibility level saved so far, including
      those saved by earlier processes.
    - A `StoredSchema` is never removed once saved, and only ever changes by being saved
      again with `deleted=True` (a soft delete), which replaces the earlier record of
      that (subject, version); saving the same one twice must be harmless.

    The registry serialises its own calls, so a store need not be thread-safe unless it
    is shared between registries.
    """

    def load(self) -> RegistrySnapshot:
        """Return every saved schema version and compatibility level."""
        ...

    def save_schema(self, schema: StoredSchema) -> None:
        """Persist one newly accepted schema version."""
        ...

    def save_compatibility(self, subject: str | None, level: CompatibilityLevel) -> None:
        """Persist a subject's compatibility level (`subject=None`: the global default)."""
        ...


class InMemoryRegistryStore:
    """A `RegistryStore` that forgets everything when the process ends. For tests."""

    def __init__(self, snapshot: RegistrySnapshot | None = None) -> None:
        self._lock = threading.Lock()
        self._schemas: dict[tuple[str, int], StoredSchema] = {}
        self._compatibility: dict[str | None, CompatibilityLevel] = {}
        if snapshot is not None:
            self._schemas = {(s.subject, s.version): s for s in snapshot.schemas}
            self._compatibility = dict(snapshot.compatibility)

    def load(self) -> RegistrySnapshot:
        with self._lock:
            return RegistrySnapshot(tuple(self._schemas.values()), dict(self._compatibility))

    def save_schema(self, schema: StoredSchema) -> None:
        with self._lock:
            self._schemas[(schema.subject, schema.version)] = schema

    def save_compatibility(self, subject: str | None, level: CompatibilityLevel) -> None:
        with self._lock:
            self._compatibility[subject] = level
