"""An event's JSON body as JSON Schema, derived from its Avro schema, for OpenAPI.

The JSON Schema describes what `schemas.jsonform.record_from_json` accepts, no more and
no less where JSON Schema can say it, so clients generated from the OpenAPI document
send what the broker takes, and a fuzzer's "invalid" bodies are refused:

- a record is an object with its fields as properties; a field without a default is
  required (except `event_id`, which the broker assigns when missing); no other
  properties;
- a union with null is `oneOf` its branch and `{"type": "null"}`; other unions `oneOf`
  their branches;
- `date` is a `format: date` string or days since 1970-01-01, `timestamp-millis` a
  `format: date-time` string or milliseconds since the epoch (both as the broker takes
  them), a string tagged as a date a `format: date` string; `int` and `long` carry their
  ranges, `bytes` and `fixed` are base64 strings;
- Handoff's data tags travel as `x-handoff-tags`, Avro docs as `description`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.datestrings import field_is_date, is_date_string_type

JsonSchema = dict[str, Any]
ASSIGNED_BY_BROKER = frozenset({"event_id"})
_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_INT64 = {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1}
_PRIMITIVES: dict[str, JsonSchema] = {
    "null": {"type": "null"},
    "boolean": {"type": "boolean"},
    "int": _INT32,
    "long": _INT64,
    "float": {"type": "number"},
    "double": {"type": "number"},
    "string": {"type": "string"},
    "bytes": {"type": "string", "format": "byte"},
}


def _logical(avro_type: Mapping[str, Any]) -> JsonSchema | None:
    """The JSON Schema of a logical type, as the broker accepts it, or None."""
    kind, logical = avro_type.get("type"), avro_type.get("logicalType")
    if kind == "string" and is_date_string_type(avro_type):
        return {"type": "string", "format": "date"}
    if kind == "int" and logical == "date":
        return {"oneOf": [{"type": "string", "format": "date"},
                          {**_INT32, "description": "days since 1970-01-01"}]}
    if kind == "long" and logical in ("timestamp-millis", "timestamp-micros"):
        unit = "milliseconds" if logical == "timestamp-millis" else "microseconds"
        return {"oneOf": [{"type": "string", "format": "date-time"},
                          {**_INT64, "description": f"{unit} since the epoch"}]}
    if kind == "string" and logical == "uuid":
        return {"type": "string", "format": "uuid"}
    return None


class _Converter:
    def __init__(self) -> None:
        self.named: dict[str, Mapping[str, Any]] = {}

    def convert(self, avro_type: Any, namespace: str) -> JsonSchema:
        if isinstance(avro_type, list):
            return self._union(avro_type, namespace)
        if isinstance(avro_type, str):
            if avro_type in _PRIMITIVES:
                return dict(_PRIMITIVES[avro_type])
            found = self.named.get(avro_type) or self.named.get(f"{namespace}.{avro_type}")
            if found is None:
                return {}
            return self.convert(found, namespace)
        logical = _logical(avro_type)
        if logical is not None:
            return logical
        kind = avro_type.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            namespace = self._remember(avro_type, namespace)
        if kind in ("record", "error"):
            return self.record(avro_type, namespace)
        if kind == "enum":
            return {"type": "string", "enum": list(avro_type["symbols"])}
        if kind == "fixed":
            return {"type": "string", "format": "byte",
                    "description": f"base64 of exactly {avro_type['size']} bytes"}
        if kind == "array":
            return {"type": "array", "items": self.convert(avro_type["items"], namespace)}
        if kind == "map":
            return {"type": "object",
                    "additionalProperties": self.convert(avro_type["values"], namespace)}
        return self.convert(kind, namespace)

    def _remember(self, named: Mapping[str, Any], namespace: str) -> str:
        name = str(named["name"])
        own = named.get("namespace", namespace) if "." not in name else name.rpartition(".")[0]
        short = name.rpartition(".")[2]
        self.named[short] = named
        if own:
            self.named[f"{own}.{short}"] = named
        return str(own or "")

    def _union(self, branches: list[Any], namespace: str) -> JsonSchema:
        converted = [self.convert(b, namespace) for b in branches]
        if len(converted) == 1:
            return converted[0]
        return {"oneOf": converted}

    def record(self, record: Mapping[str, Any], namespace: str,
               optional: frozenset[str] = frozenset()) -> JsonSchema:
        properties: dict[str, JsonSchema] = {}
        required: list[str] = []
        for spec in record.get("fields", []):
            name = str(spec["name"])
            field_type = spec["type"]
            if field_is_date(spec):
                field_type = _as_date_strings(field_type)
            schema = self.convert(field_type, namespace)
            if spec.get("doc"):
                schema = {**schema, "description": str(spec["doc"])}
            if spec.get("tags"):
                schema = {**schema, "x-handoff-tags": list(spec["tags"])}
            properties[name] = schema
            if "default" not in spec and name not in optional:
                required.append(name)
        out: JsonSchema = {"type": "object", "properties": properties,
                           "additionalProperties": False}
        if required:
            out["required"] = required
        if record.get("doc"):
            out["description"] = str(record["doc"])
        return out


def _as_date_strings(avro_type: Any) -> Any:
    if avro_type == "string":
        return {"type": "string", "format": "date"}
    if isinstance(avro_type, list):
        return [_as_date_strings(b) for b in avro_type]
    return avro_type


def event_json_schema(schema: Mapping[str, Any]) -> JsonSchema:
    """The JSON Schema of an event's JSON body, for an event type's Avro record schema."""
    converter = _Converter()
    namespace = converter._remember(schema, "")
    return converter.record(schema, namespace, optional=ASSIGNED_BY_BROKER)
