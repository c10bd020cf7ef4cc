"""The compiled Avro writer writes exactly fastavro's bytes, and leaves to fastavro every
schema and value it does not take as it is (`WireCodec.encoder` then writes or refuses
them as `WireCodec.encode` does). The compiled reader returns exactly fastavro's record,
and leaves every body not in canonical form to fastavro (`WireCodec.decode` then returns
what fastavro returns or raises `DecodeError` as before)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastavro import parse_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.catalog import SchemaCatalog
from schemas.compiled_reader import compiled_reader
from schemas.compiled_writer import INT_RANGE, LONG_RANGE, compiled_writer
from schemas.decoded_json import DecodedToJson
from schemas.errors import DecodeError, RecordValidationError
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore
from schemas.wire import HEADER_SIZE, WireCodec, body_reader, decode_wire_body, encode_wire

CATALOG = SchemaCatalog.load()
ZONES = (dt.UTC, dt.timezone(dt.timedelta(hours=-5)),
         dt.timezone(dt.timedelta(hours=9, minutes=30)))

EVERY_SHAPE = parse_schema({
    "type": "record", "name": "org.example.Every", "fields": [
        {"name": "s", "type": "string"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "b", "type": "boolean"},
        {"name": "n", "type": "null"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
        {"name": "d", "type": {"type": "int", "logicalType": "date"}},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "os", "type": ["null", "string"], "default": None},
        {"name": "oi", "type": ["null", "int"], "default": None},
        {"name": "ob", "type": ["null", "boolean"], "default": None},
        {"name": "oe", "type": ["null", {"type": "enum", "name": "F", "symbols": ["X", "Y"]}],
         "default": None},
        {"name": "od", "type": ["null", {"type": "int", "logicalType": "date"}],
         "default": None},
        {"name": "ot", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
         "default": None},
        {"name": "r", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "x", "type": "string"},
            {"name": "y", "type": ["null", "long"], "default": None}]}},
        {"name": "or", "type": ["null", {"type": "record", "name": "Other", "fields": [
            {"name": "z", "type": "int"}]}], "default": None},
    ]})


def alter(payload: bytes, data: st.DataObject) -> bytes:
    """`payload` with a byte of its body changed, its body cut short, or bytes added."""
    body = bytearray(payload)
    how = data.draw(st.sampled_from(["flip", "cut", "extend"]))
    if how == "flip" and len(body) > HEADER_SIZE:
        at = data.draw(st.integers(HEADER_SIZE, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    elif how == "cut":
        del body[data.draw(st.integers(HEADER_SIZE, len(body))):]
    else:
        body += data.draw(st.binary(min_size=1, max_size=12))
    return bytes(body)


def values(schema: Any) -> st.SearchStrategy[Any]:
    """Values of the shapes the compiled writer takes, exactly typed."""
    if isinstance(schema, list):
        return st.one_of(st.none(), values(schema[1]))
    if isinstance(schema, str):
        schema = {"type": schema}
    kind, logical = schema["type"], schema.get("logicalType")
    if logical == "date":
        return st.dates()
    if logical == "timestamp-millis":
        return st.datetimes(timezones=st.sampled_from(ZONES),
                            min_value=dt.datetime(1900, 1, 1),
                            max_value=dt.datetime(2200, 1, 1))
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: values(f["type"]) for f in schema["fields"]})
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    primitives: dict[str, st.SearchStrategy[Any]] = {
        "string": st.text(), "null": st.none(), "boolean": st.booleans(),
        "int": st.integers(*INT_RANGE), "long": st.integers(*LONG_RANGE)}
    return primitives[kind]


def fastavro_body(schema: Any, record: Any) -> bytes:
    return encode_wire(schema, 1, record)[HEADER_SIZE:]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(values(EVERY_SHAPE))
def test_every_compiled_shape_writes_fastavros_bytes(record: dict[str, Any]) -> None:
    writer = compiled_writer(EVERY_SHAPE)
    assert writer is not None
    assert writer(record) == fastavro_body(EVERY_SHAPE, record)


@pytest.mark.parametrize("event_type", ["birth", "consent", "referral_status"])
def test_event_schemas_compile_and_write_fastavros_bytes(event_type: str) -> None:
    schema = parse_schema(CATALOG.get(event_type).schema)
    writer = compiled_writer(schema)
    if writer is None:
        pytest.skip(f"{event_type} has a shape left to fastavro")

    reader = compiled_reader(schema, HEADER_SIZE)

    @settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
    @given(values(schema))
    def check(record: dict[str, Any]) -> None:
        assert writer(record) == fastavro_body(schema, record)
        if reader is not None:
            data = encode_wire(schema, 1, record)
            assert same_values(reader(data), decode_wire_body(data, schema))

    check()


def test_the_birth_schema_compiles() -> None:
    assert compiled_writer(parse_schema(CATALOG.get("birth").schema)) is not None


@pytest.mark.parametrize("schema", [
    {"type": "record", "name": "A", "fields": [{"name": "x", "type": {"type": "array",
                                                                     "items": "string"}}]},
    {"type": "record", "name": "A", "fields": [{"name": "x", "type": ["string", "null"]}]},
    {"type": "record", "name": "A", "fields": [{"name": "x", "type": ["null", "int",
                                                                      "string"]}]},
    {"type": "record", "name": "A", "fields": [{"name": "x", "type": "double"}]},
    {"type": "record", "name": "A", "fields": [{"name": "x", "type": {
        "type": "string", "logicalType": "uuid"}}]},
])
def test_shapes_it_does_not_take_are_left_to_fastavro(schema: dict[str, Any]) -> None:
    assert compiled_writer(parse_schema(schema)) is None


def every_codec() -> tuple[WireCodec, int]:
    """A codec and the id of EVERY_SHAPE in its registry."""
    registry = SchemaRegistry(InMemoryRegistryStore())
    schema_id = registry.register("every", {k: v for k, v in EVERY_SHAPE.items()
                                            if not k.startswith("__")}).schema_id
    return WireCodec(registry), schema_id


@pytest.fixture
def registered() -> tuple[WireCodec, int]:
    return every_codec()


def every_record() -> dict[str, Any]:
    return {"s": "é", "i": 1, "l": -2, "b": True, "n": None, "e": "B",
            "d": dt.date(2026, 1, 2), "t": dt.datetime(2026, 1, 2, 3, 4, 5, 678999, dt.UTC),
            "os": None, "oi": 7, "ob": False, "oe": "Y", "od": None, "ot": None,
            "r": {"x": "", "y": 2**40}, "or": {"z": -1}}


@pytest.mark.parametrize("change", [
    {"i": True},                                      # a bool where an int is
    {"l": 2.0},                                       # a float fastavro writes as a long
    {"d": 20000},                                     # days since the epoch, not a date
    {"d": dt.datetime(2026, 1, 2, 12, tzinfo=dt.UTC)},   # a datetime for a date
    {"t": 1_767_322_800_000},                         # milliseconds, not a datetime
    {"r": {"x": "a"}},                                # a missing field: its default
])
def test_values_it_does_not_take_are_written_by_fastavro(
        registered: tuple[WireCodec, int], change: dict[str, Any]) -> None:
    codec, schema_id = registered
    record = {**every_record(), **change}
    assert codec.encoder(schema_id)(record) == codec.encode(schema_id, record)


def test_records_fastavro_refuses_are_refused_alike(
        registered: tuple[WireCodec, int]) -> None:
    codec, schema_id = registered
    record = {**every_record(), "e": "NOT-A-SYMBOL"}
    with pytest.raises(RecordValidationError):
        codec.encode(schema_id, record)
    with pytest.raises(RecordValidationError):
        codec.encoder(schema_id)(record)


def test_the_encoder_writes_what_encode_writes(registered: tuple[WireCodec, int]) -> None:
    codec, schema_id = registered
    assert codec.encoder(schema_id)(every_record()) == codec.encode(schema_id, every_record())



@pytest.mark.parametrize("text", ["x" * 4095, "x" * 4096, "é" * 3000, "\U0001f600" * 70_000])
def test_long_strings_write_fastavros_bytes(text: str) -> None:
    writer = compiled_writer(EVERY_SHAPE)
    assert writer is not None
    record = {**every_record(), "s": text, "os": text}
    assert writer(record) == fastavro_body(EVERY_SHAPE, record)


@pytest.mark.parametrize("number", [0, 1, 63, 64, 4095, 4096, -1, -64, -4096, INT_RANGE[0],
                                    INT_RANGE[1]])
def test_ints_around_the_table_of_small_ones_write_fastavros_bytes(number: int) -> None:
    writer = compiled_writer(EVERY_SHAPE)
    assert writer is not None
    record = {**every_record(), "i": number, "l": number, "oi": number,
              "r": {"x": "", "y": number}, "or": {"z": number}}
    assert writer(record) == fastavro_body(EVERY_SHAPE, record)


def test_a_time_written_again_or_between_others_writes_fastavros_bytes() -> None:
    """Writers keep the last time any of them encoded (the views of one event carry the
    same one): the same object again, an equal time in another zone, and other times in
    between each write what fastavro writes."""
    writer, nested = compiled_writer(EVERY_SHAPE), compiled_writer(nested_schema())
    assert writer is not None and nested is not None
    first = dt.datetime(2026, 12, 4, 21, 34, 12, 91_000, tzinfo=dt.UTC)
    same_instant = first.astimezone(ZONES[2])
    later = first + dt.timedelta(milliseconds=1)
    for t, ot in [(first, first), (first, later), (later, first), (same_instant, None),
                  (first, same_instant), (later, later)]:
        record = {**every_record(), "t": t, "ot": ot}
        assert writer(record) == fastavro_body(EVERY_SHAPE, record)
        assert nested({"at": t}) == fastavro_body(nested_schema(), {"at": t})


def nested_schema() -> Any:
    return parse_schema({
        "type": "record", "name": "org.example.Times", "fields": [
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})


def same_values(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (True is not 1, a date not a
    datetime, and timestamps in the same zone object)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_values(a[k], b[k]) for k in a)
    if isinstance(a, dt.datetime):
        return a == b and a.tzinfo is b.tzinfo
    return bool(a == b)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(values(EVERY_SHAPE))
def test_the_compiled_reader_returns_fastavros_record(record: dict[str, Any]) -> None:
    reader = compiled_reader(EVERY_SHAPE, HEADER_SIZE)
    assert reader is not None
    data = encode_wire(EVERY_SHAPE, 1, record)
    assert same_values(reader(data), decode_wire_body(data, EVERY_SHAPE))


def test_the_birth_schema_compiles_for_reading() -> None:
    assert compiled_reader(parse_schema(CATALOG.get("birth").schema), HEADER_SIZE) is not None


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(values(EVERY_SHAPE), st.data())
def test_altered_bytes_decode_as_fastavro_decodes_them(
        record: dict[str, Any], data: st.DataObject) -> None:
    """Hostile bytes: cut, extended or with a byte changed, a payload decodes to
    fastavro's record or fails with DecodeError as fastavro's does."""
    codec, schema_id = every_codec()
    altered = alter(codec.encode(schema_id, record), data)
    try:
        expected = decode_wire_body(altered, codec._schema(schema_id))
    except DecodeError:
        with pytest.raises(DecodeError):
            codec.decode(altered)
    else:
        assert same_values(codec.decode(altered)[1], expected)


@pytest.mark.parametrize("body", [
    b"\x02",                              # boolean 1 as the byte 2: fastavro reads True
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00",   # an eleven-byte varint for 0
])
def test_non_canonical_bodies_are_read_by_fastavro(body: bytes) -> None:
    schema = parse_schema({"type": "record", "name": "B", "fields": [
        {"name": "x", "type": "boolean" if len(body) == 1 else "long"}]})
    registry = SchemaRegistry(InMemoryRegistryStore())
    schema_id = registry.register("b", {k: v for k, v in schema.items()
                                        if not k.startswith("__")}).schema_id
    payload = encode_wire(schema, schema_id, {"x": 0})[:HEADER_SIZE] + body
    reader = compiled_reader(schema, HEADER_SIZE)
    assert reader is not None
    with pytest.raises(Exception):  # noqa: B017 - any: the codec then asks fastavro
        reader(payload)
    assert WireCodec(registry).decode(payload)[1] == decode_wire_body(payload, schema)


@pytest.mark.parametrize("event_type", ["birth", "consent", "referral_status"])
def test_deliveries_render_the_same_json_through_the_compiled_reader(event_type: str) -> None:
    """Delivery decodes each view with the schema its JSON is rendered from (logical
    types taken off): the JSON a subscriber receives is the same either way."""
    schema = parse_schema(CATALOG.get(event_type).schema)
    if compiled_writer(schema) is None:
        pytest.skip(f"{event_type} has a shape left to fastavro")
    to_json = DecodedToJson(CATALOG.get(event_type).schema)
    if event_type == "birth":
        assert compiled_reader(to_json.decoding_schema, HEADER_SIZE) is not None
    read = body_reader(to_json.decoding_schema)

    @settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
    @given(values(schema))
    def check(record: dict[str, Any]) -> None:
        data = encode_wire(schema, 1, record)
        assert to_json(read(data)) == to_json(decode_wire_body(data, to_json.decoding_schema))

    check()
