"""Avro binary encoding compiled per schema, for the shapes the broker writes most.

fastavro's `schemaless_writer` interprets the schema on every call and picks each union
branch by validating the value against every branch in turn; for a view of ~25 fields,
most of them `["null", X]`, that is ~13-22 µs a record. `compiled_writer(schema)` turns a
schema fastavro has parsed into one Python function that writes exactly the bytes
fastavro writes, for records whose values are of the plain types a decoded event holds.

It is an accelerator, never a second definition of Avro:
- `compiled_writer` returns None for a schema with anything outside the shapes below, and
  the caller encodes with fastavro.
- The compiled function raises `Unfit` (or the `KeyError`, `TypeError`, ... of a value it
  cannot take) for any value that is not exactly of the type it expects: a missing field
  (fastavro would write its default), a bool where an int is expected, an int where a
  date is, a naive datetime, an int out of its type's range. The caller then encodes that
  record with fastavro, which writes it or refuses it as before.

Compiled shapes: records (nested inline), `null`, `boolean`, `int`, `long`, `string`,
enums, `int` with logical type `date`, `long` with logical type `timestamp-millis`, and
two-branch unions of `null` first and one of those. Everything else (arrays, maps, fixed,
bytes, floating point, other logical types, other unions, named references) is left to
fastavro. The bytes are checked against fastavro's in tests/unit/schemas.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAYS_SHIFT = dt.date(1970, 1, 1).toordinal()
_SMALL = [bytes([n]) for n in range(128)]
_LENGTHS_HELD = 4096

Encoder = Callable[[Mapping[str, Any]], bytes]


_LAST_MILLIS: list[tuple[object, bytes]] = [(None, b"")]
"""The last `timestamp-millis` datetime any compiled writer encoded, with its bytes (held,
so its identity cannot be another object's): the views of one event carry the same
decoded `occurred_at`, which is then encoded once, not once per view."""


class Unfit(Exception):
    """A value the compiled writer does not take as it is: encode it with fastavro."""


def zigzag(value: int) -> bytes:
    """An Avro `int` or `long`: zigzag, then a little-endian base-128 varint."""
    n = (value << 1) ^ (value >> 63)
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_LENGTHS = tuple(zigzag(n) for n in range(_LENGTHS_HELD))
"""The encoded lengths of the strings most values are, and of small non-negative ints: a
lookup, not a call."""


def _timestamp_millis(value: dt.datetime) -> int:
    # fastavro's own arithmetic for a zone-aware datetime, to the millisecond.
    delta = value - _EPOCH
    return (delta.days * 24 * 3600 + delta.seconds) * 1000 + int(delta.microseconds / 1000)


class Unsupported(Exception):
    """The schema has a shape this module leaves to fastavro."""


class GeneratedSource:
    """The generated function's lines and the constants they name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, object] = {}
        self._names = 0

    def fresh(self, stem: str) -> str:
        self._names += 1
        return f"{stem}{self._names}"

    def constant(self, value: object) -> str:
        name = self.fresh("k")
        self.constants[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def function(self, name: str, label: str, names: Mapping[str, object]) -> Any:
        """The function `name` the lines define, with `names` and the constants in scope
        (`label` names it in tracebacks)."""
        scope: dict[str, Any] = {**names, **self.constants}
        exec(compile("\n".join(self.lines), label, "exec"), scope)  # noqa: S102
        return scope[name]


def _value(src: GeneratedSource, schema: Any, var: str, depth: int) -> None:
    """Lines that append the encoding of `var` (already read) under `schema`."""
    if isinstance(schema, str):
        _primitive(src, schema, None, var, depth)
        return
    if isinstance(schema, list):
        if len(schema) != 2 or schema[0] != "null" or isinstance(schema[1], list) or \
                schema[1] == "null":
            raise Unsupported("union")
        src.emit(depth, f"if {var} is None:")
        src.emit(depth + 1, "a(b'\\x00')")
        src.emit(depth, "else:")
        src.emit(depth + 1, "a(b'\\x02')")
        _value(src, schema[1], var, depth + 1)
        return
    if not isinstance(schema, dict):
        raise Unsupported("schema node")
    kind = schema.get("type")
    if kind == "record":
        _record(src, schema, var, depth)
    elif kind == "enum":
        symbols = src.constant({s: zigzag(i) for i, s in enumerate(schema["symbols"])})
        src.emit(depth, f"a({symbols}[{var}])")
    elif isinstance(kind, str):
        _primitive(src, kind, schema.get("logicalType"), var, depth)
    else:
        raise Unsupported("type")


def _primitive(src: GeneratedSource, kind: str, logical: object, var: str, depth: int) -> None:
    if logical is not None:
        if (kind, logical) == ("int", "date"):
            src.emit(depth, f"if {var}.__class__ is not date: raise Unfit")
            src.emit(depth, f"a(zigzag({var}.toordinal() - {_DAYS_SHIFT}))")
        elif (kind, logical) == ("long", "timestamp-millis"):
            src.emit(depth, f"if {var}.__class__ is not datetime or {var}.tzinfo is None: "
                            "raise Unfit")
            src.emit(depth, "held = last[0]")
            src.emit(depth, f"if held[0] is {var}:")
            src.emit(depth + 1, "a(held[1])")
            src.emit(depth, "else:")
            src.emit(depth + 1, f"held = last[0] = ({var}, zigzag(millis({var})))")
            src.emit(depth + 1, "a(held[1])")
        else:
            raise Unsupported("logical type")
    elif kind == "string":
        src.emit(depth, f"if {var}.__class__ is not str: raise Unfit")
        src.emit(depth, f"{var} = {var}.encode()")
        src.emit(depth, f"n = len({var})")
        src.emit(depth, f"a(lengths[n] if n < {_LENGTHS_HELD} else zigzag(n))")
        src.emit(depth, f"a({var})")
    elif kind in ("int", "long"):
        low, high = INT_RANGE if kind == "int" else LONG_RANGE
        src.emit(depth, f"if {var}.__class__ is not int or not {low} <= {var} <= {high}: "
                        "raise Unfit")
        src.emit(depth, f"a(lengths[{var}] if 0 <= {var} < {_LENGTHS_HELD} else zigzag({var}))")
    elif kind == "boolean":
        src.emit(depth, f"if {var} is True: a(b'\\x01')")
        src.emit(depth, f"elif {var} is False: a(b'\\x00')")
        src.emit(depth, "else: raise Unfit")
    elif kind == "null":
        src.emit(depth, f"if {var} is not None: raise Unfit")
    else:
        raise Unsupported(kind)


def _record(src: GeneratedSource, schema: Mapping[str, Any], var: str, depth: int) -> None:
    src.emit(depth, f"if {var}.__class__ is not dict: raise Unfit")
    for field in schema["fields"]:
        value = src.fresh("v")
        src.emit(depth, f"{value} = {var}[{field['name']!r}]")
        _value(src, field["type"], value, depth)


def compiled_writer(parsed_schema: Any) -> Encoder | None:
    """A function writing a record's Avro body as fastavro would, or None when the schema
    has a shape this module leaves to fastavro (see the module's doc)."""
    if not isinstance(parsed_schema, dict) or parsed_schema.get("type") != "record":
        return None
    src = GeneratedSource()
    src.emit(0, "def write(r):")
    src.emit(1, "parts = []")
    src.emit(1, "a = parts.append")
    try:
        _record(src, parsed_schema, "r", 1)
    except (Unsupported, KeyError, TypeError):
        return None
    src.emit(1, "return b''.join(parts)")
    writer: Encoder = src.function("write", "<compiled avro writer>", {
        "Unfit": Unfit, "zigzag": zigzag, "millis": _timestamp_millis, "lengths": _LENGTHS,
        "date": dt.date, "datetime": dt.datetime, "last": _LAST_MILLIS})
    return writer
