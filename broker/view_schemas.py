"""Each subscription's view schema, registered once per loaded policy and schema version,
so every delivery's wire-format schema id resolves in the registry.

`ViewSchemas` belongs to one `LoadedPolicy` (`broker.policy_holder`): it asks that
policy's engine for a view schema and caches the id, so a delivery is always written
with the view schema of the bundle its decision was made under, whatever reloads happen
meanwhile.
"""

from __future__ import annotations

import threading

from policy import PolicyEngine
from schemas.registry import SchemaRegistry


def view_subject(subscription_id: str, event_type: str) -> str:
    return f"deliver.{subscription_id}.{event_type}-value"


class ViewSchemaRegistrar:
    """Registers view schemas under `deliver.<subscription>.<type>-value` subjects."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()

    def register(self, subscription_id: str, event_type: str, schema: dict[str, object]
                 ) -> int:
        subject = view_subject(subscription_id, event_type)
        with self._lock:
            # A policy change may legitimately narrow a view, so view subjects do not
            # enforce compatibility; each delivery names the exact writer schema anyway.
            self._registry.set_compatibility(subject, "NONE")
            return self._registry.register(subject, schema).schema_id


class ViewSchemas:
    """The view schema ids of one loaded policy."""

    def __init__(self, engine: PolicyEngine, registrar: ViewSchemaRegistrar) -> None:
        self._engine = engine
        self._registrar = registrar
        self._ids: dict[tuple[str, str, int], int] = {}

    def schema_id(self, subscription_id: str, event_type: str, version: int) -> int:
        key = (subscription_id, event_type, version)
        found = self._ids.get(key)
        if found is None:
            schema = self._engine.view_schema(subscription_id, event_type, version)
            found = self._ids[key] = self._registrar.register(subscription_id, event_type,
                                                             schema)
        return found
