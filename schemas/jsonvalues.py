"""Single Avro values in their JSON form: primitives and logical types.

`leaf_from_json` and `leaf_to_json` return the converter for one non-structural type (a
primitive, enum, fixed, or a logical type on top of one); `schemas.jsonform` composes
them. Converters from JSON append (path, message) problems instead of raising, so every
problem of a record is reported at once, and return `INVALID` when the value is unusable.
Messages say what was expected, never quoting the value, which may be personal data.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
import struct
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

Problems = list[tuple[str, str]]
FromJson = Callable[[Any, str, Problems], Any]
"""Converts one JSON value found at a path; on failure appends problems, returns INVALID."""
ToJson = Callable[[Any], Any]

INVALID: Any = object()
"""Returned by a `FromJson` converter that found a problem."""

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_NAIVE = dt.datetime(1970, 1, 1)
EPOCH_DATE = dt.date(1970, 1, 1)
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_FLOAT32 = struct.Struct("<f")


def fail(problems: Problems, path: str, value: Any, message: str) -> Any:
    problems.append((path, "null is not allowed here" if value is None else message))
    return INVALID


# -- leaf converters from JSON ----------------------------------------------------


def _integer(bounds: tuple[int, int], label: str) -> FromJson:
    low, high = bounds

    def convert(value: Any, path: str, problems: Problems) -> Any:
        if type(value) is not int:  # bool is an int subclass and is refused on purpose
            return fail(problems, path, value, "expected an integer")
        if not low <= value <= high:
            return fail(problems, path, value, f"integer outside the {label} range")
        return value

    return convert


def _number(single_precision: bool) -> FromJson:
    def convert(value: Any, path: str, problems: Problems) -> Any:
        if type(value) not in (int, float):
            return fail(problems, path, value, "expected a number")
        try:
            number = float(value)
            if single_precision:
                # Round now, so the record equals what a reader gets back.
                number = _FLOAT32.unpack(_FLOAT32.pack(number))[0]
        except (OverflowError, struct.error):
            return fail(problems, path, value, "number out of range")
        if not math.isfinite(number):
            return fail(problems, path, value, "expected a finite number")
        return number

    return convert


def _boolean(value: Any, path: str, problems: Problems) -> Any:
    if type(value) is not bool:
        return fail(problems, path, value, "expected true or false")
    return value


def _null(value: Any, path: str, problems: Problems) -> Any:
    if value is not None:
        return fail(problems, path, value, "expected null")
    return None


def _string(value: Any, path: str, problems: Problems) -> Any:
    if type(value) is not str:
        return fail(problems, path, value, "expected a string")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return fail(problems, path, value, "string contains an unpaired surrogate")
    return value


def _binary(size: int | None) -> FromJson:
    expected = "expected base64-encoded bytes"

    def convert(value: Any, path: str, problems: Problems) -> Any:
        if isinstance(value, bytes | bytearray):
            data = bytes(value)
        elif type(value) is str:
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return fail(problems, path, value, expected)
        else:
            return fail(problems, path, value, expected)
        if size is not None and len(data) != size:
            return fail(problems, path, value, f"expected exactly {size} bytes")
        return data

    return convert


def _enum(symbols: list[str]) -> FromJson:
    known = frozenset(symbols)
    expected = "expected one of: " + ", ".join(symbols)

    def convert(value: Any, path: str, problems: Problems) -> Any:
        if type(value) is not str or value not in known:
            return fail(problems, path, value, expected)
        return value

    return convert


# -- logical types from JSON --------------------------------------------------------


def _date(value: Any, path: str, problems: Problems) -> Any:
    expected = "expected a date (YYYY-MM-DD) or a number of days since 1970-01-01"
    if type(value) is dt.date:
        return value
    try:
        if type(value) is int:
            return EPOCH_DATE + dt.timedelta(days=value)
        if type(value) is str and DATE_PATTERN.match(value):
            return dt.date.fromisoformat(value)
    except (ValueError, OverflowError):
        return fail(problems, path, value, "date out of range or invalid")
    return fail(problems, path, value, expected)


def parse_iso_date(value: str) -> dt.date | None:
    """The calendar date an ISO 8601 `YYYY-MM-DD` string names, or None."""
    if not DATE_PATTERN.match(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _date_string(value: Any, path: str, problems: Problems) -> Any:
    """A string field tagged as a date: kept as the string, once it is an ISO date."""
    if type(value) is str and parse_iso_date(value) is not None:
        return value
    return fail(problems, path, value, DATE_STRING_EXPECTED)


DATE_STRING_EXPECTED = "expected an ISO 8601 date (YYYY-MM-DD)"


def _timestamp(unit_micros: int, local: bool) -> FromJson:
    unit = "milliseconds" if unit_micros == 1000 else "microseconds"
    zone = "without a time zone" if local else "with a time zone"
    expected = f"expected an ISO 8601 date-time {zone}, or {unit} since the epoch"
    epoch = EPOCH_NAIVE if local else EPOCH

    def convert(value: Any, path: str, problems: Problems) -> Any:
        try:
            if type(value) is int:
                return epoch + dt.timedelta(microseconds=value * unit_micros)
            if type(value) is str:
                value = dt.datetime.fromisoformat(value)
            if not isinstance(value, dt.datetime):
                return fail(problems, path, value, expected)
        except ValueError:
            return fail(problems, path, value, expected)
        except OverflowError:
            return fail(problems, path, value, "date-time out of range")
        if (value.tzinfo is None) != local:
            return fail(problems, path, value, expected)
        if not local:
            try:
                value = value.astimezone(UTC)
            except OverflowError:   # 0001-01-01T00:00+00:01 is before the first UTC day
                return fail(problems, path, value, "date-time out of range")
        # Truncate to the schema's precision, as a reader would see it.
        return value.replace(microsecond=value.microsecond // unit_micros * unit_micros)

    return convert


def _time_of_day(unit_micros: int) -> FromJson:
    unit = "milliseconds" if unit_micros == 1000 else "microseconds"
    expected = f"expected a time of day (HH:MM:SS.fff) or {unit} since midnight"

    def convert(value: Any, path: str, problems: Problems) -> Any:
        try:
            if type(value) is int and 0 <= value * unit_micros < 86_400_000_000:
                micros = value * unit_micros
                seconds, micro = divmod(micros, 1_000_000)
                return dt.time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)
            if type(value) is str:
                value = dt.time.fromisoformat(value)
        except ValueError:
            return fail(problems, path, value, expected)
        if type(value) is not dt.time or value.tzinfo is not None:
            return fail(problems, path, value, expected)
        return value.replace(microsecond=value.microsecond // unit_micros * unit_micros)

    return convert


def _decimal(precision: int, scale: int) -> FromJson:
    expected = f"expected a decimal number with at most {scale} decimal places"
    limit = Decimal(10) ** (precision - scale)
    quantum = Decimal(1).scaleb(-scale)

    def convert(value: Any, path: str, problems: Problems) -> Any:
        try:
            if type(value) in (int, str):
                value = Decimal(value)
            elif type(value) is float:
                value = Decimal(repr(value))
            if not isinstance(value, Decimal) or not value.is_finite():
                return fail(problems, path, value, expected)
            exact = value.quantize(quantum)
        except (InvalidOperation, ValueError):
            return fail(problems, path, value, expected)
        if exact != value:
            return fail(problems, path, value, expected)
        if abs(exact) >= limit:
            return fail(problems, path, value, f"more than {precision} significant digits")
        return exact

    return convert


def _uuid(value: Any, path: str, problems: Problems) -> Any:
    if isinstance(value, uuid.UUID):
        return value
    try:
        if type(value) is str:
            return uuid.UUID(value)
    except ValueError:
        pass
    return fail(problems, path, value, "expected a UUID")


# -- leaf converters to JSON ----------------------------------------------------------


def _bytes_to_json(value: Any) -> Any:
    return base64.b64encode(value).decode("ascii")


def _date_to_json(value: Any) -> Any:
    if type(value) is int:
        value = EPOCH_DATE + dt.timedelta(days=value)
    return value.isoformat()


def _timestamp_to_json(unit_micros: int, local: bool) -> ToJson:
    timespec = "milliseconds" if unit_micros == 1000 else "microseconds"
    epoch = EPOCH_NAIVE if local else EPOCH

    def convert(value: Any) -> Any:
        if type(value) is int:
            value = epoch + dt.timedelta(microseconds=value * unit_micros)
        if local:
            return value.isoformat(timespec=timespec)
        if value.tzinfo is not None and value.utcoffset():
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"

    return convert


def _time_to_json(unit_micros: int) -> ToJson:
    timespec = "milliseconds" if unit_micros == 1000 else "microseconds"
    return lambda value: value.isoformat(timespec=timespec)


def _decimal_to_json(value: Any) -> Any:
    return format(value, "f")


# -- dispatch ----------------------------------------------------------------------


def _logical_key(schema: Any) -> str:
    """fastavro's key for a logical type, `<type>-<logicalType>`, or the plain type."""
    if isinstance(schema, str):
        return schema
    kind = str(schema.get("type"))
    logical = schema.get("logicalType")
    if kind == "string" and (logical == "date" or schema.get("format") == "date"):
        return "string-date"  # an ISO date held as a string (not an Avro logical type)
    if logical is None or (logical == "decimal" and "precision" not in schema):
        return kind  # fastavro ignores a decimal without precision, and so do we
    return f"{kind}-{logical}"


def leaf_from_json(schema: Any) -> FromJson:
    """The JSON-to-record converter for a primitive, enum or fixed type (parsed schema)."""
    key = _logical_key(schema)
    details: Mapping[str, Any] = schema if isinstance(schema, Mapping) else {}
    factories: dict[str, Callable[[], FromJson]] = {
        "null": lambda: _null,
        "boolean": lambda: _boolean,
        "int": lambda: _integer(INT_RANGE, "32-bit"),
        "long": lambda: _integer(LONG_RANGE, "64-bit"),
        "float": lambda: _number(single_precision=True),
        "double": lambda: _number(single_precision=False),
        "string": lambda: _string,
        "bytes": lambda: _binary(None),
        "enum": lambda: _enum(list(details["symbols"])),
        "fixed": lambda: _binary(int(details["size"])),
        "int-date": lambda: _date,
        "long-timestamp-millis": lambda: _timestamp(1000, local=False),
        "long-timestamp-micros": lambda: _timestamp(1, local=False),
        "long-local-timestamp-millis": lambda: _timestamp(1000, local=True),
        "long-local-timestamp-micros": lambda: _timestamp(1, local=True),
        "int-time-millis": lambda: _time_of_day(1000),
        "long-time-micros": lambda: _time_of_day(1),
        "string-uuid": lambda: _uuid,
        "string-date": lambda: _date_string,
        "bytes-decimal": lambda: _decimal(int(details["precision"]), int(details.get("scale", 0))),
        "fixed-decimal": lambda: _decimal(int(details["precision"]), int(details.get("scale", 0))),
    }
    factory = factories.get(key) or factories[key.partition("-")[0]]
    return factory()


def leaf_to_json(schema: Any) -> ToJson | None:
    """The record-to-JSON converter for a primitive, enum or fixed type, or None when the
    value read by fastavro already is its JSON value (strings, numbers, booleans, enums)."""
    key = _logical_key(schema)
    converters: dict[str, ToJson] = {
        "bytes": _bytes_to_json,
        "fixed": _bytes_to_json,
        "int-date": _date_to_json,
        "long-timestamp-millis": _timestamp_to_json(1000, local=False),
        "long-timestamp-micros": _timestamp_to_json(1, local=False),
        "long-local-timestamp-millis": _timestamp_to_json(1000, local=True),
        "long-local-timestamp-micros": _timestamp_to_json(1, local=True),
        "int-time-millis": _time_to_json(1000),
        "long-time-micros": _time_to_json(1),
        "string-uuid": str,
        "bytes-decimal": _decimal_to_json,
        "fixed-decimal": _decimal_to_json,
    }
    return converters.get(key) or converters.get(key.partition("-")[0])


def python_type_test(schema: Any) -> Callable[[Any], bool]:
    """Tell whether a value read by fastavro belongs to this union branch, by Python type."""
    key = _logical_key(schema)
    if key == "int-date":
        return lambda v: type(v) is dt.date  # a datetime is a date too, but not this one
    if key in ("record", "error"):
        names = {f["name"] for f in schema["fields"]}
        return lambda v: isinstance(v, dict) and v.keys() <= names
    by_key: dict[str, type | tuple[type, ...]] = {
        "null": type(None),
        "boolean": bool,
        "int": int,
        "long": int,
        "float": float,
        "double": float,
        "string": str,
        "enum": str,
        "bytes": bytes,
        "fixed": bytes,
        "array": list,
        "map": dict,
        "long-timestamp-millis": dt.datetime,
        "long-timestamp-micros": dt.datetime,
        "long-local-timestamp-millis": dt.datetime,
        "long-local-timestamp-micros": dt.datetime,
        "int-time-millis": dt.time,
        "long-time-micros": dt.time,
        "string-uuid": uuid.UUID,
        "bytes-decimal": Decimal,
        "fixed-decimal": Decimal,
    }
    expected = by_key.get(key) or by_key.get(key.partition("-")[0], object)
    return lambda v: isinstance(v, expected)
