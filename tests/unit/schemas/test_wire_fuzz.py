"""Hostile bytes: mutated, truncated or extended encodings of every example event either
decode to a record or raise DecodeError, and nothing else."""

from __future__ import annotations

import contextlib
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.catalog import SchemaCatalog
from schemas.errors import DecodeError
from schemas.jsonform import record_from_json
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore
from schemas.wire import HEADER_SIZE, WireCodec

CATALOG = SchemaCatalog.load()
REGISTRY = SchemaRegistry(InMemoryRegistryStore())
CODEC = WireCodec(REGISTRY)
VALID: list[bytes] = []
for _event_type in CATALOG.event_types():
    _schema = CATALOG.get(_event_type)
    _id = REGISTRY.register(f"events.{_event_type}-value", _schema.schema).schema_id
    VALID.append(CODEC.encode(_id, record_from_json(_schema.schema, _schema.example)))


@st.composite
def hostile_payloads(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    # Mostly leave the header alone, so the body decoder is what gets exercised.
    keep_header = draw(st.booleans()) or draw(st.booleans())
    low = HEADER_SIZE if keep_header else 0
    for _ in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        position = draw(st.integers(low, max(low, len(data) - 1)))
        if action == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and position < len(data):
            data[position] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=12))
        elif action == "delete" and position < len(data):
            del data[position : position + draw(st.integers(1, 8))]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_payloads())
def test_mutated_payloads_decode_or_raise_decode_error(payload: bytes) -> None:
    try:
        schema_id, record = CODEC.decode(payload)
    except DecodeError:
        return
    assert isinstance(record, dict)
    assert REGISTRY.by_id(schema_id)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bodies_decode_or_raise_decode_error(body: bytes) -> None:
    schema_id = REGISTRY.get("events.birth-value").schema_id
    with contextlib.suppress(DecodeError):
        CODEC.decode(b"\x00" + schema_id.to_bytes(4, "big") + body)


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


@pytest.mark.parametrize("declared", [2**40, 2**62])
def test_a_huge_declared_string_fails_fast_without_allocating(declared: int) -> None:
    schema_id = REGISTRY.get("events.birth-value").schema_id
    # event_id is the first field: a string whose declared length dwarfs the payload.
    payload = b"\x00" + schema_id.to_bytes(4, "big") + _zigzag(declared) + b"x" * 32
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            CODEC.decode(payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Memory is bounded by the payload, not by what it declares.
    assert peak < 1_000_000
