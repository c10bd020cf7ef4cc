"""Avro binary straight to compact JSON text, compiled per schema.

Delivery renders each view record as the JSON text every reader of it receives: decoded
(`schemas.compiled_reader`), turned into JSON values (`DecodedToJson`), then written as
text (`broker.delivery.view_text`), three passes and a dict of ~20 values per record.
`compiled_json_reader(schema)` makes one Python function that reads the record's Avro
body and writes its text in one pass, the same text to the byte that
`json.dumps(record_to_json(record), separators=(",", ":"))` writes (strings escaped to
ASCII as `json.dumps` escapes them), with no dict in between.

It takes the shapes `compiled_reader` takes, read with `DecodedToJson.decoding_schema`
(timestamps and dates marked `READ_AS`, their text made by `number_text`), and the same
bodies: anything not in canonical form raises (`Unfit`, `IndexError`, `ValueError`,
`OverflowError`, or `DecodeError` for a date or time out of range), and the caller then
takes the path through fastavro, which returns what it returns or says why not. A schema
with a shape it does not take (floats, bytes, arrays, maps, other logical types, wider
unions) gives None.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring_ascii
from typing import Any

from schemas.compiled_reader import (
    compile_body_reader,
    emit_boolean,
    emit_enum,
    emit_long,
    emit_optional,
    emit_string,
)
from schemas.compiled_writer import GeneratedSource, Unsupported
from schemas.decoded_json import READ_AS, number_text

TextReader = Callable[[bytes], str]


def _value(src: GeneratedSource, schema: Any, var: str, depth: int) -> None:
    """Lines that read one value of `schema` at `i` and put its JSON text in `var`."""
    if isinstance(schema, list):
        emit_optional(src, schema, var, depth, "'null'", _value)
        return
    if isinstance(schema, str):
        schema = {"type": schema}
    if not isinstance(schema, Mapping):
        raise Unsupported("schema node")
    kind = schema.get("type")
    if kind == "record":
        _record(src, schema, var, depth)
    elif kind == "enum":
        emit_enum(src, tuple(json.dumps(s) for s in schema["symbols"]), var, depth)
    elif "logicalType" in schema:
        raise Unsupported("logical type")
    elif READ_AS in schema:
        if kind not in ("int", "long"):
            raise Unsupported("number")
        text = src.constant(number_text(str(schema[READ_AS])))
        emit_long(src, var, depth, kind)
        src.emit(depth, f"{var} = f'\"{{{text}({var})}}\"'")
    elif kind == "string":
        emit_string(src, var, depth)
        src.emit(depth, f"{var} = escape({var})")
    elif kind in ("int", "long"):
        emit_long(src, var, depth, kind)
        src.emit(depth, f"{var} = int_text({var})")
    elif kind == "boolean":
        emit_boolean(src, var, depth, "'true'", "'false'")
    elif kind == "null":
        src.emit(depth, f"{var} = 'null'")
    else:
        raise Unsupported(str(kind))


def _record(src: GeneratedSource, schema: Mapping[str, Any], var: str, depth: int) -> None:
    """`{"name":value,...}` in field order: the keys' text, made once, between the
    values' text."""
    parts: list[str] = []
    before = "{"
    for field in schema["fields"]:
        value = src.fresh("v")
        _value(src, field["type"], value, depth)
        key = src.constant(before + encode_basestring_ascii(str(field["name"])) + ":")
        parts.append(f"{{{key}}}{{{value}}}")
        before = ","
    end = src.constant("}" if parts else "{}")
    src.emit(depth, f"{var} = f'{''.join(parts)}{{{end}}}'")


def compiled_json_reader(decoding_schema: Any, start: int) -> TextReader | None:
    """A function from a payload to the compact JSON text of the record whose Avro body
    runs from `start` to its end (`decoding_schema`: `DecodedToJson.decoding_schema`,
    parsed), or None when the schema has a shape left to the decode-then-write path."""
    reader: TextReader | None = compile_body_reader(
        decoding_schema, start, _record, "<compiled avro json reader>",
        {"escape": encode_basestring_ascii, "int_text": int.__repr__})
    return reader
