"""A delivery's envelope reads the same from its headers in the order the router writes
them, in any other order, or with a header more."""

from __future__ import annotations

import json

from broker.delivery.envelope import DeliveryEnvelope, delivery_headers
from broker.log.port import LogRecord
from broker.log.sqlite_storage import decode_headers, encode_headers

HEADERS = delivery_headers(
    "e-1", "d-1", "birth", "county-general", 1_700_000_000_123, 1_700_000_000_456,
    json.dumps(["mother.ssn"]).encode(), json.dumps([{"type": "notify"}]).encode())
EXPECTED = DeliveryEnvelope("e-1", "d-1", "birth", "county-general", 1_700_000_000_123,
                            1_700_000_000_456, ("mother.ssn",), ({"type": "notify"},))


def record(headers: tuple[tuple[str, bytes], ...]) -> LogRecord:
    return LogRecord("deliver.s", 0, 0, None, b"", headers, 0)


def test_the_envelope_reads_the_same_whatever_the_order_of_its_headers() -> None:
    assert DeliveryEnvelope.from_record(record(HEADERS)) == EXPECTED
    assert DeliveryEnvelope.from_record(record(HEADERS[::-1])) == EXPECTED
    swapped = (HEADERS[1], HEADERS[0], *HEADERS[2:])
    assert DeliveryEnvelope.from_record(record(swapped)) == EXPECTED
    assert DeliveryEnvelope.from_record(record((*HEADERS, ("x-extra", b"1")))) == EXPECTED


def test_headers_stored_by_the_log_read_back_as_written() -> None:
    odd = (("", b""), ("ü", b"\x00\xff"), ("handoff.event_id", b"x" * 70_000))
    for headers in (HEADERS, odd, ()):
        assert decode_headers(encode_headers(headers)) == headers
