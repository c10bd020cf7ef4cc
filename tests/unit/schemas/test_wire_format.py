"""Confluent wire format: framing, round trips, and the single DecodeError boundary."""

from __future__ import annotations

import copy
import struct
from typing import Any

import pytest

from schemas.catalog import SchemaCatalog
from schemas.decoding_safety import decoding_hazards
from schemas.errors import DecodeError, RecordValidationError, UnknownSchemaError
from schemas.jsonform import record_from_json
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore, RegistrySnapshot, StoredSchema
from schemas.wire import WireCodec, decode_wire_body, encode_wire

CATALOG = SchemaCatalog.load()
SECRET = "SECRET-512-44-9031"


def varint(n: int) -> bytes:
    """Avro's zig-zag variable-length encoding of a long."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def header(schema_id: int) -> bytes:
    return struct.pack(">bI", 0, schema_id)


SMALL = {
    "type": "record",
    "name": "Small",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}


@pytest.fixture
def registry() -> SchemaRegistry:
    registry = SchemaRegistry(InMemoryRegistryStore())
    for event_type in CATALOG.event_types():
        registry.register(f"events.{event_type}-value", CATALOG.get(event_type).schema)
    registry.register("small", SMALL)
    return registry


@pytest.fixture
def codec(registry: SchemaRegistry) -> WireCodec:
    return WireCodec(registry)


def small_id(registry: SchemaRegistry) -> int:
    return registry.get("small").schema_id


@pytest.mark.parametrize("event_type", CATALOG.event_types())
def test_every_example_round_trips(
    registry: SchemaRegistry, codec: WireCodec, event_type: str
) -> None:
    schema = CATALOG.get(event_type)
    schema_id = registry.get(f"events.{event_type}-value").schema_id
    record = record_from_json(schema.schema, schema.example)
    data = codec.encode(schema_id, record)
    assert data[:5] == header(schema_id)
    assert codec.decode(data) == (schema_id, record)
    assert codec.decode(data, expected_schema_id=schema_id) == (schema_id, record)


def test_module_functions_are_the_same_format(registry: SchemaRegistry, codec: WireCodec) -> None:
    schema_id = small_id(registry)
    parsed = registry.parsed(schema_id)
    record = {"name": "x", "kind": "B", "note": None, "tags": ["a"]}
    data = encode_wire(parsed, schema_id, record)
    assert data == codec.encode(schema_id, record)
    assert decode_wire_body(data, parsed) == record


def test_decode_into_a_newer_reader_schema(registry: SchemaRegistry, codec: WireCodec) -> None:
    newer = copy.deepcopy(SMALL)
    newer["fields"].append({"name": "count", "type": "long", "default": 7})
    old_id = small_id(registry)
    new_id = registry.register("small", newer).schema_id
    data = codec.encode(old_id, {"name": "x", "kind": "A", "note": None, "tags": []})
    assert codec.decode(data, reader_schema_id=new_id) == (
        old_id,
        {"name": "x", "kind": "A", "note": None, "tags": [], "count": 7},
    )


def malformed(schema_id: int) -> list[tuple[str, bytes]]:
    body_ok = varint(6) + SECRET[:6].encode() + varint(0) + varint(0) + varint(0)
    return [
        ("empty", b""),
        ("shorter than the header", b"\x00\x00\x00"),
        ("wrong magic byte", b"\x01" + header(schema_id)[1:] + body_ok),
        ("unknown schema id", header(424242) + body_ok),
        ("truncated body", header(schema_id) + body_ok[:4]),
        ("trailing bytes", header(schema_id) + body_ok + b"\x00"),
        ("negative string length", header(schema_id) + varint(-5) + b"abc"),
        ("string longer than the payload", header(schema_id) + varint(2**40) + b"abc"),
        ("invalid UTF-8", header(schema_id) + varint(2) + b"\xff\xfe" + b"\x00\x00\x00"),
        ("bad enum index", header(schema_id) + varint(1) + b"x" + varint(9) + b"\x00\x00"),
        ("bad union index", header(schema_id) + varint(1) + b"x" + varint(0) + varint(5)),
        (
            "huge array count",
            header(schema_id) + varint(1) + b"x" + varint(0) + varint(0) + varint(2**62),
        ),
        ("overlong varint", header(schema_id) + b"\xff" * 12),
        ("header only", header(schema_id)),
    ]


@pytest.mark.parametrize("case", [c for c, _ in malformed(0)])
def test_malformed_payloads_raise_decode_error(
    registry: SchemaRegistry, codec: WireCodec, case: str
) -> None:
    data = dict(malformed(small_id(registry)))[case]
    with pytest.raises(DecodeError) as raised:
        codec.decode(data)
    assert "SECRET" not in str(raised.value)
    assert raised.value.__cause__ is None or not isinstance(raised.value.__cause__, UnicodeError)


@pytest.mark.parametrize("payload", [None, "text", 42, [0, 0, 0, 0, 1]])
def test_non_bytes_raise_decode_error(codec: WireCodec, payload: Any) -> None:
    with pytest.raises(DecodeError):
        codec.decode(payload)


def test_size_is_checked_before_anything_else(registry: SchemaRegistry) -> None:
    codec = WireCodec(registry, max_bytes=64)
    with pytest.raises(DecodeError, match="over the 64-byte limit"):
        codec.decode(b"\x07" * 65)  # wrong magic too, but size is reported first


def test_expected_schema_id_is_enforced(registry: SchemaRegistry, codec: WireCodec) -> None:
    data = codec.encode(small_id(registry), {"name": "x", "kind": "A"})
    with pytest.raises(DecodeError, match="expected 1"):
        codec.decode(data, expected_schema_id=1)


def test_unknown_reader_schema_is_a_decode_error(
    registry: SchemaRegistry, codec: WireCodec
) -> None:
    data = codec.encode(small_id(registry), {"name": "x", "kind": "A"})
    with pytest.raises(DecodeError):
        codec.decode(data, reader_schema_id=999)


def test_incompatible_reader_schema_is_a_decode_error(
    registry: SchemaRegistry, codec: WireCodec
) -> None:
    data = codec.encode(small_id(registry), {"name": "x", "kind": "A"})
    birth_id = registry.get("events.birth-value").schema_id
    with pytest.raises(DecodeError):
        codec.decode(data, reader_schema_id=birth_id)


def test_hazardous_schema_from_the_store_is_refused_not_crashed() -> None:
    # Loaded as-is from a store, bypassing registration checks: decoding must refuse it
    # rather than let fastavro recurse until the stack overflows.
    recursive = '{"fields":[{"name":"next","type":["null","Node"]}],"name":"Node","type":"record"}'
    store = InMemoryRegistryStore(RegistrySnapshot((StoredSchema("n", 1, 1, recursive),)))
    codec = WireCodec(SchemaRegistry(store))
    with pytest.raises(DecodeError, match="refers to itself"):
        codec.decode(header(1) + b"\x02" * 100_000 + b"\x00")
    with pytest.raises(UnknownSchemaError):
        codec.encode(1, {"next": None})


def test_encode_names_the_fields_that_do_not_fit(
    registry: SchemaRegistry, codec: WireCodec
) -> None:
    with pytest.raises(RecordValidationError) as raised:
        codec.encode(small_id(registry), {"name": 5, "kind": SECRET})
    assert ("name", "expected a string") in raised.value.problems
    assert ("kind", "expected one of: A, B") in raised.value.problems
    assert SECRET not in str(raised.value)


def test_strict_encode_catches_what_fastavro_would_accept(
    registry: SchemaRegistry, codec: WireCodec
) -> None:
    # A plain int (a nullable one, as in the birth schema, fastavro checks itself).
    counted = {"type": "record", "name": "Counted", "fields": [
        {"name": "child", "type": {"type": "record", "name": "Child", "fields": [
            {"name": "birth_weight_grams", "type": "int"}]}}]}
    schema_id = registry.register("counted", counted).schema_id
    record = {"child": {"birth_weight_grams": 2**40}}
    codec.encode(schema_id, record)  # fastavro writes an over-long int silently
    with pytest.raises(RecordValidationError) as raised:
        codec.encode(schema_id, record, validate=True)
    assert raised.value.problems == [
        ("child.birth_weight_grams", "integer outside the 32-bit range")
    ]


def test_encode_with_unknown_id(codec: WireCodec) -> None:
    with pytest.raises(UnknownSchemaError):
        codec.encode(999, {})
    with pytest.raises(UnknownSchemaError):
        codec.encode(-1, {})


def _record_of(*fields: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "R",
        "fields": [{"name": f"f{i}", "type": t} for i, t in enumerate(fields)],
    }


@pytest.mark.parametrize(
    ("schema", "hazards"),
    [
        (_record_of("string", {"type": "array", "items": "int"}), []),
        (
            _record_of({"type": "array", "items": "null"}),
            ["f0[]: array items can be encoded in zero bytes"],
        ),
        (
            _record_of({"type": "array", "items": {"type": "record", "name": "E", "fields": []}}),
            ["f0[]: array items can be encoded in zero bytes"],
        ),
        (
            _record_of({"type": "array", "items": {"type": "fixed", "name": "F", "size": 0}}),
            ["f0[]: array items can be encoded in zero bytes"],
        ),
        (_record_of({"type": "array", "items": ["null", "int"]}), []),
        (_record_of({"type": "map", "values": "null"}), []),
        (
            _record_of(
                {
                    "type": "record",
                    "name": "Inner",
                    "fields": [{"name": "again", "type": ["null", "Inner"]}],
                }
            ),
            ["f0.again: type Inner refers to itself"],
        ),
    ],
)
def test_decoding_hazards(schema: Any, hazards: list[str]) -> None:
    assert decoding_hazards(schema) == hazards
