"""Records fastavro has just decoded, turned into their JSON values where they lie.

`schemas.jsonform.record_to_json` builds a new dict for every record it converts, field
by field, so it accepts any mapping. A record fastavro has just decoded with a schema
holds every field of every record in schema order already, and most values (strings,
numbers, booleans, enum symbols, nulls) are their own JSON values. `DecodedToJson`
replaces only the others (timestamps, dates, times, bytes, fixed, decimals, UUIDs) in the
record's own dicts, and leaves records with nothing to replace untouched: the delivery
path owns the record it decoded, and pays per field that needs converting, not per field.

Timestamps (UTC, milliseconds or microseconds) and dates are not even made into
`datetime` and `date` objects: records are decoded with `decoding_schema`, the schema
with those logical types taken off (marked `READ_AS` instead), so fastavro hands over the
numbers, and their text is the text of their second or day (made once and kept) plus
the fraction. In a union with several non-null branches the logical type stays, since
the number alone would not say which branch it was.

The result is the same JSON values, in the same key order, that `record_to_json` gives
for the record; `tests/unit/delivery/test_frame_bytes.py` pins that for every type.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

from schemas.compatibility import parse_for_resolution
from schemas.errors import DecodeError, SchemaError
from schemas.json_unions import union_to_json
from schemas.jsonvalues import EPOCH_DATE, EPOCH_NAIVE, ToJson, leaf_to_json

READ_AS = "handoff.readAs"
"""Marks a number whose logical type `decoding_schema` took off (the value: which)."""
_TAKEN_OFF = {("long", "timestamp-millis"), ("long", "timestamp-micros"), ("int", "date")}
_KEPT = 4096
_second_texts: dict[int, str] = {}
_day_texts: dict[int, str] = {}
_OUT_OF_RANGE = "a number, date or time is out of range"


def _second_text(second: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS` of a second since the epoch (UTC)."""
    text = _second_texts.get(second)
    if text is None:
        try:
            text = (EPOCH_NAIVE + dt.timedelta(seconds=second)).isoformat()
        except OverflowError:  # as fastavro's own reading of it would fail
            raise DecodeError(_OUT_OF_RANGE) from None
        if len(_second_texts) >= _KEPT:
            _second_texts.clear()
        _second_texts[second] = text
    return text


def utc_millis_text(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC text with milliseconds and `Z`, as
    `record_to_json` writes a `timestamp-millis`."""
    second, milli = divmod(ms, 1000)
    return f"{_second_text(second)}.{milli:03d}Z"


def _utc_micros_text(us: int) -> str:
    second, micro = divmod(us, 1_000_000)
    return f"{_second_text(second)}.{micro:06d}Z"


def _date_text(days: int) -> str:
    text = _day_texts.get(days)
    if text is None:
        try:
            text = (EPOCH_DATE + dt.timedelta(days=days)).isoformat()
        except OverflowError:
            raise DecodeError(_OUT_OF_RANGE) from None
        if len(_day_texts) >= _KEPT:
            _day_texts.clear()
        _day_texts[days] = text
    return text


_FROM_NUMBER: dict[str, ToJson] = {
    "timestamp-millis": utc_millis_text,
    "timestamp-micros": _utc_micros_text,
    "date": _date_text,
}


def number_text(read_as: str) -> ToJson:
    """The text (unquoted) of a number read under a `READ_AS` mark, as `DecodedToJson`
    makes it: `KeyError` for a mark it does not know."""
    return _FROM_NUMBER[read_as]


def _taken_off(schema: Any) -> Any:
    """`schema` (JSON values) with the logical types of `_TAKEN_OFF` replaced by
    `READ_AS` marks, except on branches of unions with more than one non-null branch
    (there the value's Python type tells which branch it is)."""
    if isinstance(schema, list):
        alone = sum(1 for b in schema if b != "null") == 1
        return [_taken_off(b) if alone or not _is_taken_off(b) else b for b in schema]
    if not isinstance(schema, Mapping):
        return schema
    if _is_taken_off(schema):
        rest = {k: v for k, v in schema.items() if k != "logicalType"}
        return {**rest, READ_AS: schema["logicalType"]}
    # fastavro's own keys, were the schema parsed already, would bring back the named
    # types as they were: the copy is parsed afresh.
    out = {k: v for k, v in schema.items() if not str(k).startswith("__")}
    kind = schema.get("type")
    if kind in ("record", "error"):
        out["fields"] = [{**f, "type": _taken_off(f["type"])} for f in schema["fields"]]
    elif kind == "array":
        out["items"] = _taken_off(schema["items"])
    elif kind == "map":
        out["values"] = _taken_off(schema["values"])
    elif isinstance(kind, (list, Mapping)):
        out["type"] = _taken_off(kind)
    return out


def _is_taken_off(schema: Any) -> bool:
    return isinstance(schema, Mapping) and (
        schema.get("type"), schema.get("logicalType")) in _TAKEN_OFF


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
        if isinstance(schema, Mapping) and READ_AS in schema:
            return _FROM_NUMBER[schema[READ_AS]]
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
        return union_to_json([(self.deref(b), self.build(b)) for b in branches if b != "null"])


def _unchanged(value: Any) -> Any:
    return value


class DecodedToJson:
    """Turns records of one record schema, decoded by fastavro with `decoding_schema`,
    into JSON values, in place.

    Call it with the dict fastavro returned (and nothing else holds): it returns that
    dict, its values replaced by their JSON form. Raises `DecodeError` for a timestamp or
    date outside the years 1 to 9999 (which fastavro could not have read as one).
    """

    def __init__(self, schema: Any) -> None:
        """`schema`: the record schema as JSON values (or JSON text)."""
        if isinstance(schema, str):
            schema = json.loads(schema)
        builder = _Builder(_taken_off(schema))
        if not isinstance(builder.root, Mapping) or builder.root.get("type") not in (
                "record", "error"):
            raise SchemaError("records can only be converted with a record schema")
        self.decoding_schema: Any = builder.root
        """The schema, parsed by fastavro, to decode records with (see the module)."""
        self._convert: Callable[[Any], Any] = builder.build(builder.root) or _unchanged

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        converted: dict[str, Any] = self._convert(record)
        return converted
