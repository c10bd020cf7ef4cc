"""Decoded records to JSON values in place: which logical types are read as numbers, and
what a number out of range does (the bytes subscribers get are pinned in
tests/unit/delivery/test_frame_bytes.py)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import fastavro
import pytest

from schemas.decoded_json import READ_AS, DecodedToJson, utc_millis_text
from schemas.errors import DecodeError
from schemas.jsonform import record_to_json

TS = {"type": "long", "logicalType": "timestamp-millis"}
DAY = {"type": "int", "logicalType": "date"}
SCHEMA = {"type": "record", "name": "Seen", "fields": [
    {"name": "at", "type": TS},
    {"name": "maybe_at", "type": ["null", TS]},
    {"name": "days", "type": {"type": "array", "items": DAY}},
    {"name": "either", "type": ["null", "long", DAY]},
]}


def fields_of(parsed: Any) -> dict[str, Any]:
    return {f["name"]: f["type"] for f in parsed["fields"]}


def test_timestamps_and_dates_are_read_as_numbers_unless_a_union_needs_their_type() -> None:
    fields = fields_of(DecodedToJson(SCHEMA).decoding_schema)
    assert fields["at"][READ_AS] == "timestamp-millis" and "logicalType" not in fields["at"]
    assert fields["maybe_at"][1][READ_AS] == "timestamp-millis"
    assert fields["days"]["items"][READ_AS] == "date"
    # A long or a date: only the decoded value's type tells them apart.
    assert fields["either"][2]["logicalType"] == "date"


def decode(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(in place, record_to_json) of one record written with SCHEMA."""
    parsed = fastavro.parse_schema(SCHEMA)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, record)
    view = DecodedToJson(SCHEMA)
    fast = view(fastavro.schemaless_reader(io.BytesIO(out.getvalue()), view.decoding_schema))
    slow = record_to_json(SCHEMA, fastavro.schemaless_reader(io.BytesIO(out.getvalue()), parsed))
    return fast, slow


@pytest.mark.parametrize("ms", [0, -1, 1_796_344_486_802, 253_402_300_799_999,
                                -62_135_596_800_000])
def test_the_same_json_values_as_record_to_json(ms: int) -> None:
    at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    fast, slow = decode({"at": at, "maybe_at": at, "days": [dt.date(2024, 2, 29)],
                         "either": dt.date(1, 1, 1)})
    assert fast == slow
    assert fast["at"] == utc_millis_text(ms)


def test_a_timestamp_past_year_9999_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="out of range"):
        decode({"at": 253_402_300_800_000, "maybe_at": None, "days": [], "either": None})
