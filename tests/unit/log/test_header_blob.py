"""The embedded log stores a record's headers as one blob: each header's name length
(u16), value length (u32), name (UTF-8) and value, in order. The blob is the same
whatever headers were stored before it, and headers it cannot store are refused."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import broker.log.sqlite_storage as storage
from broker.errors import LogError
from broker.log.sqlite_storage import _decode_each, decode_headers, encode_headers

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


@given(st.lists(HEADERS.filter(bool), min_size=1, max_size=30), st.data())
def test_blobs_of_one_length_and_any_layout_read_as_their_headers(
        batches: list[tuple[tuple[str, bytes], ...]], data: st.DataObject) -> None:
    """The log reads a blob in one call when an earlier blob of the same length had the
    same layout (names, value lengths): headers of other layouts at that length, values
    of any content, and blobs cut short still read as read one header at a time."""
    for headers in batches:
        storage._LAYOUTS.clear()   # as a new process: this blob's layout is learnt
        blob = as_written(headers)
        assert decode_headers(blob) == headers
        assert len(blob) in storage._LAYOUTS
        # The same layout, other values; then another layout of the same length.
        same = tuple((name, bytes(len(value))) for name, value in headers)
        name, value = headers[-1]
        other = (*headers[:-1], (name + "x", value[1:])) if value else headers
        for shaped in (headers, same, other, headers):
            assert decode_headers(as_written(shaped)) == shaped
        cut = data.draw(st.integers(0, len(blob)))
        expected_error = None
        try:
            expected = _decode_each(blob[:cut])
        except Exception as exc:  # whatever reading one header at a time raises
            expected_error = type(exc)
        if expected_error is None:
            assert decode_headers(blob[:cut]) == expected
        else:
            with pytest.raises(expected_error):
                decode_headers(blob[:cut])
