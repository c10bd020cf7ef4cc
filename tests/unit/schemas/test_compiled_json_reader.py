"""The compiled JSON reader writes, from a record's Avro bytes, exactly the text the
delivery path wrote before it (decode, `record_to_json`, `json.dumps` with compact
separators), and leaves every body not in canonical form, and every schema with a shape
it does not take, to that path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastavro import parse_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.compiled_json_reader import compiled_json_reader
from schemas.compiled_writer import Unfit
from schemas.decoded_json import DecodedToJson
from schemas.errors import DecodeError
from schemas.jsonform import record_to_json
from schemas.wire import HEADER_SIZE, decode_wire_body, encode_wire
from tests.unit.schemas.test_compiled_codec import CATALOG, EVERY_SHAPE, alter, values

EVERY = {k: v for k, v in EVERY_SHAPE.items() if not k.startswith("__")}
TO_JSON = DecodedToJson(EVERY)
NOT_CANONICAL = (Unfit, IndexError, ValueError, OverflowError, TypeError, DecodeError)


def reference(schema: Any, data: bytes) -> str:
    """The text a subscriber received before: fastavro's record, as JSON values, dumped."""
    record = decode_wire_body(data, parse_schema(schema))
    return json.dumps(record_to_json(schema, record), separators=(",", ":"))


def test_every_shape_compiles() -> None:
    assert compiled_json_reader(TO_JSON.decoding_schema, HEADER_SIZE) is not None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(values(EVERY_SHAPE))
def test_the_text_is_the_decoded_records_json_to_the_byte(record: dict[str, Any]) -> None:
    read = compiled_json_reader(TO_JSON.decoding_schema, HEADER_SIZE)
    assert read is not None
    data = encode_wire(EVERY_SHAPE, 1, record)
    assert read(data) == reference(EVERY, data)


@pytest.mark.parametrize("text", ['quote " backslash \\ slash /', "tab\tnew\nline\x00\x1f",
                                  "del \x7f", "é ü ß", "\U0001f600", "\u2028\u2029"])
def test_strings_are_escaped_as_json_dumps_escapes_them(text: str) -> None:
    schema = {"type": "record", "name": "S", "fields": [{"name": "s", "type": "string"}]}
    read = compiled_json_reader(DecodedToJson(schema).decoding_schema, HEADER_SIZE)
    assert read is not None
    data = encode_wire(parse_schema(schema), 1, {"s": text})
    assert read(data) == reference(schema, data)


@pytest.mark.parametrize("event_type", ["birth", "consent", "referral_status"])
def test_event_schemas_read_to_the_same_text(event_type: str) -> None:
    schema = CATALOG.get(event_type).schema
    read = compiled_json_reader(DecodedToJson(schema).decoding_schema, HEADER_SIZE)
    if read is None:
        pytest.skip(f"{event_type} has a shape left to the decode-then-write path")

    @settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
    @given(values(parse_schema(schema)))
    def check(record: dict[str, Any]) -> None:
        data = encode_wire(parse_schema(schema), 1, record)
        assert read(data) == reference(schema, data)

    check()


@pytest.mark.parametrize("field_type", [
    "float", "double", "bytes", {"type": "array", "items": "string"},
    {"type": "map", "values": "long"}, {"type": "string", "logicalType": "uuid"},
    ["null", "string", "long"], {"type": "fixed", "name": "F", "size": 2},
])
def test_shapes_it_does_not_take_are_left_to_the_decode_path(field_type: Any) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": field_type}]}
    assert compiled_json_reader(DecodedToJson(schema).decoding_schema, HEADER_SIZE) is None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(values(EVERY_SHAPE), st.data())
def test_altered_bytes_give_the_same_text_or_are_left_to_the_decode_path(
        record: dict[str, Any], data: st.DataObject) -> None:
    """Hostile bytes: cut, extended or with a byte changed, a payload reads to the text
    the decode path gives, or raises so that the decode path reads it (or refuses)."""
    read = compiled_json_reader(TO_JSON.decoding_schema, HEADER_SIZE)
    assert read is not None
    altered = alter(encode_wire(EVERY_SHAPE, 1, record), data)
    try:
        text = read(altered)
    except NOT_CANONICAL:
        return
    assert text == reference(EVERY, altered)


@pytest.mark.parametrize(("logical", "number"), [
    ("timestamp-micros", -1), ("timestamp-micros", 1_796_420_080_227_123),
    ("timestamp-millis", -1_001), ("timestamp-millis", 253_402_300_799_999),
    ("date", -719_162), ("date", 2_932_896),
])
def test_times_and_dates_read_as_their_text(logical: str, number: int) -> None:
    kind = "int" if logical == "date" else "long"
    schema = {"type": "record", "name": "T", "fields": [
        {"name": "t", "type": {"type": kind, "logicalType": logical}}]}
    read = compiled_json_reader(DecodedToJson(schema).decoding_schema, HEADER_SIZE)
    assert read is not None
    data = encode_wire(parse_schema({**schema, "fields": [{"name": "t", "type": kind}]}), 1,
                       {"t": number})
    assert read(data) == reference(schema, data)


def test_a_date_out_of_range_is_left_to_the_decode_path() -> None:
    schema = {"type": "record", "name": "T", "fields": [
        {"name": "t", "type": {"type": "int", "logicalType": "date"}}]}
    read = compiled_json_reader(DecodedToJson(schema).decoding_schema, HEADER_SIZE)
    assert read is not None
    data = encode_wire(parse_schema({**schema, "fields": [{"name": "t", "type": "int"}]}), 1,
                       {"t": 2_932_897})   # the day after 9999-12-31
    with pytest.raises(NOT_CANONICAL):
        read(data)
