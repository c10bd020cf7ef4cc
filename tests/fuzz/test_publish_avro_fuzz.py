"""Hostile Avro over HTTP: mutated, truncated and length-bombed wire-format payloads sent
to `POST /v1/events/{type}` as `application/vnd.handoff.avro`.

Every answer is a 202 (a mutation that still makes a valid event) or a documented
problem: 400 `undecodable-payload`, 422 `invalid-event`, 413 over the size cap. Never a
5xx, never a crash, and memory stays bounded (measured with tracemalloc over the run,
including payloads whose length prefixes claim gigabytes).
"""

from __future__ import annotations

import struct
import tracemalloc
from collections import Counter
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.catalog import SchemaCatalog
from schemas.jsonform import record_from_json
from schemas.wire import HEADER_SIZE
from tests.e2e.harness import demo_keys

pytestmark = pytest.mark.slow

AVRO = "application/vnd.handoff.avro"
HEADERS = {"Authorization": f"Bearer {demo_keys()['county-general']}", "Content-Type": AVRO}
ANSWERS = {202: None, 400: "/problems/undecodable-payload", 413: "/problems/payload-too-large",
           422: "/problems/invalid-event"}
MEMORY_BOUND = 64 * 1024 * 1024
seen: Counter[int] = Counter()


@pytest.fixture(scope="module")
def client(fuzz_app) -> Iterator[TestClient]:
    with TestClient(fuzz_app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def valid_birth(fuzz_runtime) -> bytes:
    registered = fuzz_runtime.event_types.latest("birth")
    example = SchemaCatalog.load().get("birth").example
    record = record_from_json(registered.schema.schema, example)
    return fuzz_runtime.codec.encode(registered.schema_id, record)


def zigzag_varint(n: int) -> bytes:
    value = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@st.composite
def mutations(draw: st.DrawFn, valid: bytes) -> bytes:
    data = bytearray(valid)
    low = HEADER_SIZE if draw(st.booleans()) or draw(st.booleans()) else 0
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "set", "insert", "delete", "bomb"]))
        position = draw(st.integers(low, max(low, len(data) - 1)))
        if action == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and position < len(data):
            data[position] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif action == "delete" and position < len(data):
            del data[position:position + draw(st.integers(1, 8))]
        elif action == "bomb":
            # A length or block count claiming up to 2^62 items or bytes.
            claim = draw(st.sampled_from([2**31 - 1, 2**40, 2**62, -(2**62)]))
            data[position:position] = zigzag_varint(claim)
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


def send(client: TestClient, payload: bytes) -> None:
    response = client.post("/v1/events/birth", content=payload, headers=HEADERS)
    status = response.status_code
    seen[status] += 1
    assert status in ANSWERS, f"{status}: {response.text[:300]}"
    if ANSWERS[status] is not None:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == ANSWERS[status]


def test_mutated_avro_gets_only_documented_answers_in_bounded_memory(client, valid_birth):
    send(client, valid_birth)
    assert seen[202] == 1
    tracemalloc.start()
    try:
        @settings(max_examples=400, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow,
                                         HealthCheck.function_scoped_fixture])
        @given(mutations(valid_birth))
        def fuzz(payload: bytes) -> None:
            send(client, payload)

        fuzz()
        # Hand-made bombs: a header naming the birth schema, then a body that claims a
        # huge first string, a huge array, or is just over the size cap.
        header = valid_birth[:HEADER_SIZE]
        for body in (zigzag_varint(2**62), zigzag_varint(2**31) + b"x" * 64,
                     b"\x02" + zigzag_varint(-(2**40)), b"\xff" * 11):
            send(client, header + body)
        send(client, header + b"\x00" * (2 * 1024 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\nanswers: {dict(seen)}; tracemalloc peak {peak / 2**20:.1f} MiB")
    assert peak < MEMORY_BOUND
    assert seen[400] > 100 and seen[413] >= 1


def test_avro_naming_another_event_types_schema_is_undecodable(client, fuzz_runtime,
                                                                valid_birth):
    referral = fuzz_runtime.event_types.latest("referral")
    payload = struct.pack(">bI", 0, referral.schema_id) + valid_birth[HEADER_SIZE:]
    response = client.post("/v1/events/birth", content=payload, headers=HEADERS)
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/undecodable-payload"
