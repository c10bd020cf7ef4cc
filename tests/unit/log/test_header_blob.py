"""The embedded log stores a record's headers as one blob: each header's name length
(u16), value length (u32), name (UTF-8) and value, in order. The blob is the same
whatever headers were stored before it, and headers it cannot store are refused."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import LogError
from broker.log.sqlite_storage import decode_headers, encode_headers

NAMES = st.sampled_from(["handoff.event_id", "handoff.withheld", "x", "", "ü-name"]) | \
    st.text(max_size=20)
HEADERS = st.lists(st.tuples(NAMES, st.binary(max_size=40)), max_size=10).map(tuple)


def as_written(headers: tuple[tuple[str, bytes], ...]) -> bytes:
    return b"".join(struct.pack(">HI", len(name.encode()), len(value)) + name.encode() + value
                    for name, value in headers)


@given(st.lists(HEADERS, min_size=1, max_size=8))
def test_each_blob_is_its_headers_as_written_in_any_sequence(batches: list[
        tuple[tuple[str, bytes], ...]]) -> None:
    for headers in batches:
        blob = encode_headers(headers)
        if not headers:
            assert blob is None
            continue
        assert blob == as_written(headers)
        assert decode_headers(blob) == headers


@pytest.mark.parametrize("bad", [
    (("name", "a str, not bytes"),),
    ((b"bytes-name", b"v"),),
    (("n", 7),),
    (("x" * 70_000, b"v"),),
    (("\ud800", b"v"),),
    (("only a name",),),
])
def test_a_header_the_log_cannot_store_is_refused(bad: tuple[object, ...]) -> None:
    encode_headers((("ok", b"v"),))   # a prefix kept for another name changes nothing
    with pytest.raises(LogError, match="a record header must be"):
        encode_headers(bad)  # type: ignore[arg-type]
