"""Avro binary decoding compiled per schema, the reading twin of `compiled_writer`.

fastavro's `schemaless_reader` interprets the schema for every record; the router decodes
every ingress event (a birth: ~30 fields, ~17 µs). `compiled_reader(schema)` turns a
schema fastavro has parsed into one Python function that returns the record fastavro
returns, for bodies in the canonical form a writer produces.

Decoding is where hostile bytes meet the broker, so the compiled function takes only what
is unambiguous, and raises (`Unfit`, `IndexError`, `ValueError`, `OverflowError`) on
anything else: a varint of more than 64 bits, an `int` outside 32 bits, a boolean byte
other than 0 or 1, a union or enum index out of range, a negative length or one past the
end, invalid UTF-8, a date or time Python cannot hold, trailing bytes. The caller then
decodes those bytes with fastavro (`schemas.wire.decode_wire_body`), which returns what
it returns or raises `DecodeError` as before. Every slice is bounded by the payload's
length, so memory stays bounded as the wire module promises.

Compiled shapes are the writer's: records, `null`, `boolean`, `int`, `long`, `string`,
enums of up to 64 symbols, `int`/`date`, `long`/`timestamp-millis`, and `["null", X]`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from schemas.compiled_writer import INT_RANGE, GeneratedSource, Unfit, Unsupported

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAYS_SHIFT = dt.date(1970, 1, 1).toordinal()
_MAX_VARINT_BYTES = 10
_VARINT_LIMIT = 2**64
"""Up to 64 bits: what Python's and fastavro's arithmetic agree on."""

Decoder = Callable[[bytes], dict[str, Any]]
NOT_CANONICAL = (Unfit, IndexError, ValueError, OverflowError, TypeError)
"""What a compiled reader raises for a body it leaves to fastavro, which reads it or says
why not."""


def long_at(data: bytes, i: int) -> tuple[int, int]:
    """The zigzag varint at `i` and the position after it. Raises `Unfit` for more than
    64 bits and `IndexError` past the end."""
    n = 0
    shift = 0
    for _ in range(_MAX_VARINT_BYTES):
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            if n >= _VARINT_LIMIT:
                raise Unfit
            return (n >> 1) ^ -(n & 1), i
        shift += 7
    raise Unfit


def emit_long(src: GeneratedSource, var: str, depth: int, kind: str = "long") -> None:
    """Lines that read the zigzag varint at `i` into `var`, moving `i` past it; for an
    `int` (`kind`), one outside 32 bits raises `Unfit`."""
    src.emit(depth, "b = data[i]")
    src.emit(depth, "if b < 128:")
    src.emit(depth + 1, f"{var} = (b >> 1) ^ -(b & 1)")
    src.emit(depth + 1, "i += 1")
    src.emit(depth, "else:")
    src.emit(depth + 1, f"{var}, i = long_at(data, i)")
    if kind == "int":
        low, high = INT_RANGE
        src.emit(depth, f"if not {low} <= {var} <= {high}: raise Unfit")


def emit_string(src: GeneratedSource, var: str, depth: int) -> None:
    """Lines that read the string at `i` (strict UTF-8, within the payload) into `var`,
    moving `i` past it."""
    src.emit(depth, "b = data[i]")
    src.emit(depth, "if b < 128:")
    src.emit(depth + 1, "if b & 1: raise Unfit")
    src.emit(depth + 1, "j = i + 1 + (b >> 1)")
    src.emit(depth + 1, "i += 1")
    src.emit(depth, "else:")
    src.emit(depth + 1, "j, i = long_at(data, i)")
    src.emit(depth + 1, "if j < 0: raise Unfit")
    src.emit(depth + 1, "j += i")
    src.emit(depth, "if j > size: raise Unfit")
    src.emit(depth, f"{var} = data[i:j].decode()")
    src.emit(depth, "i = j")


ValueEmitter = Callable[[GeneratedSource, Any, str, int], None]
"""Emits the lines that read one value of a schema at `i` into a variable."""


def emit_optional(src: GeneratedSource, schema: list[Any], var: str, depth: int,
                  null: str, inner: ValueEmitter) -> None:
    """Lines that read a `["null", X]` union at `i` into `var`: `null` (an expression)
    for its first branch, X read by `inner` for its second."""
    if len(schema) != 2 or schema[0] != "null" or isinstance(schema[1], list) or \
            schema[1] == "null":
        raise Unsupported("union")
    src.emit(depth, "b = data[i]")
    src.emit(depth, "i += 1")
    src.emit(depth, "if b == 0:")
    src.emit(depth + 1, f"{var} = {null}")
    src.emit(depth, "elif b == 2:")
    inner(src, schema[1], var, depth + 1)
    src.emit(depth, "else:")
    src.emit(depth + 1, "raise Unfit")


def emit_enum(src: GeneratedSource, symbols: tuple[object, ...], var: str,
              depth: int) -> None:
    """Lines that read an enum's index at `i` and put the value `symbols` holds for it
    in `var` (at most 64 symbols: an index of one varint byte)."""
    if len(symbols) > 64:
        raise Unsupported("enum")
    name = src.constant(symbols)
    src.emit(depth, "b = data[i]")
    src.emit(depth, "i += 1")
    src.emit(depth, f"if b & 1 or b >= {2 * len(symbols)}: raise Unfit")
    src.emit(depth, f"{var} = {name}[b >> 1]")


def emit_boolean(src: GeneratedSource, var: str, depth: int, true: str,
                 false: str) -> None:
    """Lines that read the boolean byte at `i` into `var` as `true` or `false` (two
    expressions); any other byte raises `Unfit`."""
    src.emit(depth, "b = data[i]")
    src.emit(depth, "i += 1")
    src.emit(depth, f"if b == 1: {var} = {true}")
    src.emit(depth, f"elif b == 0: {var} = {false}")
    src.emit(depth, "else: raise Unfit")


def _value(src: GeneratedSource, schema: Any, var: str, depth: int) -> None:
    """Lines that read one value of `schema` at `i` into `var`, moving `i` past it."""
    if isinstance(schema, str):
        _primitive(src, schema, None, var, depth)
        return
    if isinstance(schema, list):
        emit_optional(src, schema, var, depth, "None", _value)
        return
    if not isinstance(schema, dict):
        raise Unsupported("schema node")
    kind = schema.get("type")
    if kind == "record":
        _record(src, schema, var, depth)
    elif kind == "enum":
        emit_enum(src, tuple(schema["symbols"]), var, depth)
    elif isinstance(kind, str):
        _primitive(src, kind, schema.get("logicalType"), var, depth)
    else:
        raise Unsupported("type")


def _primitive(src: GeneratedSource, kind: str, logical: object, var: str,
               depth: int) -> None:
    if logical is not None:
        if (kind, logical) == ("int", "date"):
            emit_long(src, var, depth, "int")
            src.emit(depth, f"{var} = date_at({var} + {_DAYS_SHIFT})")
        elif (kind, logical) == ("long", "timestamp-millis"):
            emit_long(src, var, depth)
            src.emit(depth, f"{var} = EPOCH + timedelta(microseconds={var} * 1000)")
        else:
            raise Unsupported("logical type")
    elif kind == "string":
        emit_string(src, var, depth)
    elif kind in ("int", "long"):
        emit_long(src, var, depth, kind)
    elif kind == "boolean":
        emit_boolean(src, var, depth, "True", "False")
    elif kind == "null":
        src.emit(depth, f"{var} = None")
    else:
        raise Unsupported(kind)


def _record(src: GeneratedSource, schema: Mapping[str, Any], var: str, depth: int) -> None:
    fields = []
    for field in schema["fields"]:
        value = src.fresh("v")
        _value(src, field["type"], value, depth)
        fields.append(f"{field['name']!r}: {value}")
    src.emit(depth, f"{var} = {{{', '.join(fields)}}}")


def compile_body_reader(schema: Any, start: int, record: ValueEmitter, label: str,
                        names: Mapping[str, object]) -> Any:
    """`read(data)`: the value `record` emits for the record `schema` whose Avro body runs
    from `start` to the end of the payload (raising `Unfit` for trailing bytes), with
    `names` in scope; None when the schema is not a record or has a shape `record` does
    not take."""
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        return None
    src = GeneratedSource()
    src.emit(0, "def read(data):")
    src.emit(1, "size = len(data)")
    src.emit(1, f"i = {start}")
    try:
        record(src, schema, "r", 1)
    except (Unsupported, KeyError, TypeError):
        return None
    src.emit(1, "if i != size: raise Unfit")
    src.emit(1, "return r")
    return src.function("read", label, {"Unfit": Unfit, "long_at": long_at, **names})


def compiled_reader(parsed_schema: Any, start: int) -> Decoder | None:
    """A function reading a record's Avro body from `start` to the end of the payload as
    fastavro would, or None when the schema has a shape left to fastavro."""
    reader: Decoder | None = compile_body_reader(
        parsed_schema, start, _record, "<compiled avro reader>",
        {"EPOCH": _EPOCH, "timedelta": dt.timedelta, "date_at": dt.date.fromordinal})
    return reader
