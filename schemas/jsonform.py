"""Records as JSON: what publishers send and subscribers receive.

`record_from_json` turns a JSON document into the Python record fastavro writes, checking
it strictly against the Avro schema and reporting every problem at once as
(field path, message) pairs. `record_to_json` turns a record (as fastavro reads it) back
into JSON values: dates as `YYYY-MM-DD`, timestamps as ISO 8601 with milliseconds and
`Z`, bytes as base64, enums as their symbol.

Both are driven by the schema alone, so they work for every event schema and every
derived view schema. A schema is compiled into converter functions once and cached, so
the per-event path only calls closures. Single values are converted by
`schemas.jsonvalues`; this module handles records, arrays, maps, unions and defaults.

Problem messages never quote the offending value, which may be personal data; they say
what was expected instead.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

from schemas.compatibility import describe, parse_for_resolution
from schemas.datestrings import as_date_string, field_is_date
from schemas.errors import RecordValidationError, SchemaError
from schemas.json_unions import union_to_json
from schemas.jsonvalues import (
    INVALID,
    FromJson,
    Problems,
    ToJson,
    fail,
    leaf_from_json,
    leaf_to_json,
)


def _attempt(converter: FromJson, value: Any, path: str) -> Problems:
    found: Problems = []
    converter(value, path, found)
    return found


_NOT_MAPPINGS = frozenset((str, int, float, bool, list))
"""Types of JSON values that are never a `Mapping` (a union checks for wrapping)."""
_PATHS_KEPT = 16
"""Paths a record type keeps its fields' joined paths for (see `_record_from_json`)."""
_IMMUTABLE = (type(None), str, int, float, bool, bytes, Decimal)
"""Default values shared between records as they are, never changed in place."""


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# -- the compiler ---------------------------------------------------------------------


class _Compiler:
    """Builds the two converters for one schema, sharing work between named types."""

    def __init__(self, schema: Any) -> None:
        self.named: dict[str, Any] = {}
        self.root = parse_for_resolution(schema, self.named)
        self._from_named: dict[str, FromJson] = {}
        self._to_named: dict[str, ToJson] = {}

    def deref(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema in self.named:
            return self.named[schema]
        return schema

    # from JSON

    def from_json(self, schema: Any) -> FromJson:
        schema = self.deref(schema)
        if isinstance(schema, list):
            return self._union_from_json(schema)
        kind = schema if isinstance(schema, str) else schema["type"]
        if kind in ("record", "error"):
            return self._named_from_json(schema)
        if kind == "array":
            return self._array_from_json(self.from_json(schema["items"]))
        if kind == "map":
            return self._map_from_json(self.from_json(schema["values"]))
        return leaf_from_json(schema)

    def _named_from_json(self, schema: Mapping[str, Any]) -> FromJson:
        name = str(schema["name"])
        known = self._from_named.get(name)
        if known is not None:
            return known
        built: list[FromJson] = []
        # A recursive reference compiled while this record is being built calls through.
        self._from_named[name] = lambda v, p, pr: built[0](v, p, pr)
        converter = self._record_from_json(schema)
        built.append(converter)
        self._from_named[name] = converter
        return converter

    def _record_from_json(self, schema: Mapping[str, Any]) -> FromJson:
        fields: list[tuple[str, FromJson, bool, Any]] = []
        for field in schema["fields"]:
            has_default = "default" in field
            default = (
                self._default(field["type"], field["default"], field["name"])
                if has_default
                else None
            )
            field_type = as_date_string(field["type"]) if field_is_date(field) \
                else field["type"]
            fields.append((field["name"], self.from_json(field_type), has_default, default))
        names = frozenset(f[0] for f in fields)
        # The hot path of publishing: paths joined inline, immutable defaults not copied,
        # the keys checked for strangers in one set operation before naming any.
        plan = [(name, converter, has_default, default, not isinstance(default, _IMMUTABLE))
                for name, converter, has_default, default in fields]
        # The plan with each field's path, per path the record is found at: a record
        # outside arrays and maps is always at the same one, so the fields' paths are
        # joined once, not for every value (a few paths kept; the rest joined per value).
        at_path: dict[str, list[tuple[str, str, FromJson, bool, Any, bool]]] = {}

        def plan_at(path: str) -> list[tuple[str, str, FromJson, bool, Any, bool]]:
            joined = [(name, _join(path, name), *rest) for name, *rest in plan]
            if len(at_path) < _PATHS_KEPT:
                at_path[path] = joined
            return joined

        def convert(value: Any, path: str, problems: Problems) -> Any:
            if type(value) is not dict and not isinstance(value, Mapping):
                return fail(problems, path, value, "expected a JSON object")
            record: dict[str, Any] = {}
            valid = True
            for name, field_path, field_converter, has_default, default, mutable in (
                    at_path.get(path) or plan_at(path)):
                if name in value:
                    converted = field_converter(value[name], field_path, problems)
                    if converted is INVALID:
                        valid = False
                    record[name] = converted
                elif has_default:
                    record[name] = copy.deepcopy(default) if mutable else default
                else:
                    problems.append((_join(path, name), "required field missing"))
                    valid = False
            if names.issuperset(value):
                return record if valid else INVALID
            for position, key in enumerate(value, 1):
                if key not in names:
                    # A key is the caller's text, which may be personal data (an SSN used
                    # as a key): named by its position in the object, never repeated.
                    problems.append((_join(path, f"<key {position}>"),
                                     f"unknown field (key {position} of this object; its "
                                     "name is not repeated)"))
                    valid = False
            return record if valid else INVALID

        return convert

    def _array_from_json(self, items: FromJson) -> FromJson:
        def convert(value: Any, path: str, problems: Problems) -> Any:
            if not isinstance(value, list):
                return fail(problems, path, value, "expected a JSON array")
            out = [items(item, f"{path}[{index}]", problems) for index, item in enumerate(value)]
            return INVALID if any(item is INVALID for item in out) else out

        return convert

    def _map_from_json(self, values: FromJson) -> FromJson:
        def convert(value: Any, path: str, problems: Problems) -> Any:
            if not isinstance(value, Mapping):
                return fail(problems, path, value, "expected a JSON object")
            # Map keys are data, so paths say "some value of this map", not which key.
            out = {str(key): values(item, f"{path}{{}}", problems) for key, item in value.items()}
            return INVALID if any(item is INVALID for item in out.values()) else out

        return convert

    def _union_from_json(self, branches: list[Any]) -> FromJson:
        resolved = [self.deref(b) for b in branches]
        nullable = "null" in resolved
        others = [(describe(b), b, self.from_json(b)) for b in resolved if b != "null"]
        wrappers: dict[str, FromJson] = {}
        for name, branch, converter in others:
            wrappers[name] = converter
            if isinstance(branch, Mapping) and branch.get("type") in ("record", "enum", "fixed"):
                wrappers[name.rpartition(".")[2]] = converter  # short name too
        type_names = ", ".join(describe(b) for b in resolved)

        def convert(value: Any, path: str, problems: Problems) -> Any:
            if value is None:
                return None if nullable else fail(problems, path, value, "")
            # (A JSON scalar or array, the commonest values, skips the abstract class's
            # check.)
            if type(value) not in _NOT_MAPPINGS and isinstance(value, Mapping) \
                    and len(value) == 1:
                # Avro's JSON encoding wraps union values as {"type name": value}; a
                # one-key object that is not a valid wrapping is tried as a plain value.
                ((key, inner),) = value.items()
                if key in wrappers:
                    wrapped: Problems = []
                    converted = wrappers[key](inner, path, wrapped)
                    if not wrapped or not any_branch_accepts(value):
                        problems.extend(wrapped)
                        return converted
            if len(others) == 1:
                return others[0][2](value, path, problems)
            for _, _, converter in others:
                attempt: Problems = []
                converted = converter(value, path, attempt)
                if not attempt:
                    return converted
            problems.append((path, f"does not match any type of the union ({type_names})"))
            return INVALID

        def any_branch_accepts(value: Any) -> bool:
            return any(not _attempt(converter, value, path="") for _, _, converter in others)

        return convert

    def _default(self, schema: Any, default: Any, name: str) -> Any:
        """A field default (Avro JSON, bytes as latin-1 text) as a record value."""
        schema = self.deref(schema)
        # Avro says a union's default belongs to its first branch; fastavro also accepts
        # defaults of later branches, so those are tried too.
        branches = [self.deref(b) for b in schema] if isinstance(schema, list) else [schema]
        for branch in branches:
            converted = self._default_for(branch, default, name)
            if converted is not INVALID:
                return converted
        raise SchemaError(f"{name}: default does not match the field's type")

    def _default_for(self, schema: Any, default: Any, name: str) -> Any:
        kind = schema if isinstance(schema, str) else schema.get("type")
        if kind in ("bytes", "fixed") and isinstance(default, str):
            try:
                raw = default.encode("latin-1")
            except UnicodeEncodeError:
                return INVALID
            if isinstance(schema, Mapping) and schema.get("logicalType") == "decimal":
                unscaled = int.from_bytes(raw, "big", signed=True)
                return Decimal(unscaled).scaleb(-int(schema.get("scale", 0)))
            default = raw
        problems: Problems = []
        converted = self.from_json(schema)(default, name, problems)
        return INVALID if problems else converted

    # to JSON

    def to_json(self, schema: Any) -> ToJson | None:
        """A converter, or None where the record value already is its JSON value."""
        schema = self.deref(schema)
        if isinstance(schema, list):
            return self._union_to_json(schema)
        kind = schema if isinstance(schema, str) else schema["type"]
        if kind in ("record", "error"):
            return self._named_to_json(schema)
        if kind == "array":
            items = self.to_json(schema["items"])
            return None if items is None else (lambda v: [items(x) for x in v])
        if kind == "map":
            values = self.to_json(schema["values"])
            return None if values is None else (lambda v: {k: values(x) for k, x in v.items()})
        return leaf_to_json(schema)

    def _named_to_json(self, schema: Mapping[str, Any]) -> ToJson:
        name = str(schema["name"])
        if name in self._to_named:
            return self._to_named[name]
        built: list[ToJson] = []
        self._to_named[name] = lambda v: built[0](v)
        fields = [(f["name"], self.to_json(f["type"])) for f in schema["fields"]]

        def convert(record: Any) -> Any:
            out = {}
            for field_name, field_converter in fields:
                value = record.get(field_name)
                if field_converter is not None and value is not None:
                    value = field_converter(value)
                out[field_name] = value
            return out

        built.append(convert)
        self._to_named[name] = convert
        return convert

    def _union_to_json(self, branches: list[Any]) -> ToJson | None:
        return union_to_json([(self.deref(b), self.to_json(b)) for b in branches
                              if b != "null"])


class JsonForm:
    """The compiled JSON converters of one record schema. Get one with `json_form`."""

    def __init__(self, schema: Any) -> None:
        compiler = _Compiler(schema)
        root = compiler.deref(compiler.root)
        if not isinstance(root, Mapping) or root.get("type") not in ("record", "error"):
            raise SchemaError("records can only be converted with a record schema")
        self._from_json = compiler.from_json(root)
        to_json = compiler.to_json(root)
        assert to_json is not None  # a record always has a converter
        self._to_json = to_json

    def problems(self, data: Any) -> Problems:
        """Every (field path, message) problem that `from_json` would raise for."""
        found: Problems = []
        self._from_json(data, "", found)
        return found

    def from_json(self, data: Any) -> dict[str, Any]:
        """Convert and validate a JSON record. Raises `RecordValidationError`."""
        found: Problems = []
        record = self._from_json(data, "", found)
        if found or record is INVALID:
            raise RecordValidationError(found or [("", "record is invalid")])
        return record

    def to_json(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Convert a record as fastavro reads it into JSON values."""
        return self._to_json(record)


_BY_IDENTITY_LIMIT = 512
_by_identity: dict[int, tuple[Any, JsonForm]] = {}


@lru_cache(maxsize=1024)
def _json_form_for_text(canonical: str) -> JsonForm:
    return JsonForm(json.loads(canonical))


def json_form(schema: Any) -> JsonForm:
    """The cached `JsonForm` for a schema (JSON values or fastavro-parsed).

    Looked up by object identity first (one dict hit on the hot path), then by canonical
    text, so equal schemas share one compilation. Schemas are treated as immutable: a
    dict changed after its first use keeps its first compilation. Raises `SchemaError`.
    """
    hit = _by_identity.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    try:
        canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"schema is not JSON: {exc}") from exc
    form = _json_form_for_text(canonical)
    if len(_by_identity) >= _BY_IDENTITY_LIMIT:
        _by_identity.clear()
    # Holding the schema keeps its id from being reused by another object.
    _by_identity[id(schema)] = (schema, form)
    return form


def record_from_json(schema: Any, data: Any) -> dict[str, Any]:
    """Convert a JSON record to the record fastavro writes, checking it strictly.

    Raises `RecordValidationError` listing every (field path, message) problem.
    """
    return json_form(schema).from_json(data)


def record_to_json(schema: Any, record: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a record as fastavro reads it into JSON values, for delivery."""
    return json_form(schema).to_json(record)
