"""Records fastavro has just decoded, turned into their JSON values where they lie.

`schemas.jsonform.record_to_json` builds a new dict for every record it converts, field
by field, so it accepts any mapping. A record fastavro has just decoded with a schema
holds every field of every record in schema order already, and most values (strings,
numbers, booleans, enum symbols, nulls) are their own JSON values. `DecodedToJson`
replaces only the others (timestamps, dates, times, bytes, fixed, decimals, UUIDs) in the
record's own dicts, and leaves records with nothing to replace untouched: the delivery
path owns the record it decoded, and pays per field that needs converting, not per field.

The result is the same JSON values, in the same key order, that `record_to_json` gives
for the record; `tests/unit/delivery/test_frame_bytes.py` pins that for every type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from schemas.compatibility import parse_for_resolution
from schemas.errors import SchemaError
from schemas.jsonvalues import ToJson, leaf_to_json, python_type_test


class _Builder:
    """Builds the converters of one schema, once per named record."""

    def __init__(self, schema: Any) -> None:
        self.named: dict[str, Any] = {}
        self.root = self.deref(parse_for_resolution(schema, self.named))
        self._records: dict[str, ToJson | None] = {}

    def deref(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema in self.named:
            return self.named[schema]
        return schema

    def build(self, schema: Any) -> ToJson | None:
        """The converter of a value of `schema`, or None where fastavro's value already
        is its JSON value. Records, arrays and maps come back as the same objects."""
        schema = self.deref(schema)
        if isinstance(schema, list):
            return self._union(schema)
        kind = schema if isinstance(schema, str) else schema["type"]
        if kind in ("record", "error"):
            return self._record(schema)
        if kind == "array":
            items = self.build(schema["items"])
            return None if items is None else (lambda v: [items(x) for x in v])
        if kind == "map":
            values = self.build(schema["values"])
            return None if values is None else (
                lambda v: {k: values(x) for k, x in v.items()})
        return leaf_to_json(schema)

    def _record(self, schema: Mapping[str, Any]) -> ToJson | None:
        name = str(schema["name"])
        if name in self._records:
            return self._records[name]
        built: list[ToJson] = []
        # A recursive reference built while this record is being built calls through.
        self._records[name] = lambda v: built[0](v)
        plan = tuple((f["name"], converter) for f in schema["fields"]
                     if (converter := self.build(f["type"])) is not None)
        if not plan:
            built.append(_unchanged)
            self._records[name] = None
            return None

        def convert(record: Any) -> Any:
            for field_name, field_converter in plan:
                value = record[field_name]
                if value is not None:
                    record[field_name] = field_converter(value)
            return record

        built.append(convert)
        self._records[name] = convert
        return convert

    def _union(self, branches: list[Any]) -> ToJson | None:
        # As `record_to_json` chooses: the first non-null branch whose Python type the
        # value has.
        options = [(self.deref(b), self.build(b)) for b in branches if b != "null"]
        if all(converter is None for _, converter in options):
            return None
        if len(options) == 1:
            single = options[0][1]
            assert single is not None
            return lambda v: None if v is None else single(v)
        tests = [(python_type_test(branch), converter) for branch, converter in options]

        def convert(value: Any) -> Any:
            for test, converter in tests:
                if test(value):
                    return value if converter is None else converter(value)
            return value

        return convert


def _unchanged(value: Any) -> Any:
    return value


class DecodedToJson:
    """Turns records fastavro decoded with one record schema into JSON values, in place.

    Call it with the dict fastavro returned (and nothing else holds): it returns that
    dict, its values replaced by their JSON form.
    """

    def __init__(self, schema: Any) -> None:
        builder = _Builder(schema)
        if not isinstance(builder.root, Mapping) or builder.root.get("type") not in (
                "record", "error"):
            raise SchemaError("records can only be converted with a record schema")
        self._convert: Callable[[Any], Any] = builder.build(builder.root) or _unchanged

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        converted: dict[str, Any] = self._convert(record)
        return converted
