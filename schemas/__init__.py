"""Handoff's event schemas: the catalog, the registry, the wire format and the JSON form.

Names are imported on first use, so `import schemas.errors` (or `schemas.tags`) stays
cheap and does not load fastavro.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemas.catalog import EventSchema, FieldInfo, SchemaCatalog
    from schemas.compatibility import CompatibilityLevel, reader_can_read
    from schemas.errors import (
        DecodeError,
        HandoffError,
        IncompatibleSchemaError,
        RecordValidationError,
        SchemaError,
        UnknownSchemaError,
    )
    from schemas.jsonform import JsonForm, json_form, record_from_json, record_to_json
    from schemas.registry import RegisteredSchema, SchemaRegistry
    from schemas.store import InMemoryRegistryStore, RegistrySnapshot, RegistryStore, StoredSchema
    from schemas.wire import WireCodec, decode_wire_body, encode_wire

_EXPORTS: dict[str, str] = {
    "SchemaCatalog": "schemas.catalog",
    "EventSchema": "schemas.catalog",
    "FieldInfo": "schemas.catalog",
    "CompatibilityLevel": "schemas.compatibility",
    "reader_can_read": "schemas.compatibility",
    "HandoffError": "schemas.errors",
    "SchemaError": "schemas.errors",
    "UnknownSchemaError": "schemas.errors",
    "IncompatibleSchemaError": "schemas.errors",
    "DecodeError": "schemas.errors",
    "RecordValidationError": "schemas.errors",
    "JsonForm": "schemas.jsonform",
    "json_form": "schemas.jsonform",
    "record_from_json": "schemas.jsonform",
    "record_to_json": "schemas.jsonform",
    "SchemaRegistry": "schemas.registry",
    "RegisteredSchema": "schemas.registry",
    "RegistryStore": "schemas.store",
    "RegistrySnapshot": "schemas.store",
    "InMemoryRegistryStore": "schemas.store",
    "StoredSchema": "schemas.store",
    "WireCodec": "schemas.wire",
    "encode_wire": "schemas.wire",
    "decode_wire_body": "schemas.wire",
}

__all__ = [
    "CompatibilityLevel",
    "DecodeError",
    "EventSchema",
    "FieldInfo",
    "HandoffError",
    "InMemoryRegistryStore",
    "IncompatibleSchemaError",
    "JsonForm",
    "RecordValidationError",
    "RegisteredSchema",
    "RegistrySnapshot",
    "RegistryStore",
    "SchemaCatalog",
    "SchemaError",
    "SchemaRegistry",
    "StoredSchema",
    "UnknownSchemaError",
    "WireCodec",
    "decode_wire_body",
    "encode_wire",
    "json_form",
    "reader_can_read",
    "record_from_json",
    "record_to_json",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'schemas' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
