"""Registers each subscription's view schema, once per (bundle version, schema version),
so every delivery's wire-format schema id resolves in the registry."""

from __future__ import annotations

import threading

from broker.policy_holder import PolicyHolder
from schemas.registry import SchemaRegistry


def view_subject(subscription_id: str, event_type: str) -> str:
    return f"deliver.{subscription_id}.{event_type}-value"


class ViewSchemas:
    def __init__(self, registry: SchemaRegistry, policy: PolicyHolder) -> None:
        self._registry = registry
        self._policy = policy
        self._ids: dict[tuple[str, str, str, int], int] = {}
        self._lock = threading.Lock()

    def schema_id(self, subscription_id: str, event_type: str, version: int) -> int:
        engine = self._policy.engine
        key = (self._policy.bundle.version, subscription_id, event_type, version)
        found = self._ids.get(key)
        if found is not None:
            return found
        with self._lock:
            subject = view_subject(subscription_id, event_type)
            # A policy change may legitimately narrow a view, so view subjects do not
            # enforce compatibility; each delivery names the exact writer schema anyway.
            self._registry.set_compatibility(subject, "NONE")
            schema = engine.view_schema(subscription_id, event_type, version)
            registered = self._registry.register(subject, schema)
            self._ids[key] = registered.schema_id
            return registered.schema_id
