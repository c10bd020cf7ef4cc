"""Sealed record values open only where they were sealed."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.records import SealedRecordError, associated_data, open_sealed, seal

CIPHER = AESGCM(AESGCM.generate_key(bit_length=256))
HEADERS = (("handoff.event_id", b"e-1"), ("handoff.source", b"county-general"))


def sealed_birth() -> bytes:
    return seal(CIPHER, b"\x00avro body", associated_data("events.birth", "dk-1", b"S1",
                                                          HEADERS))


def test_a_sealed_value_opens_with_the_same_context_and_hides_the_plaintext():
    sealed = sealed_birth()
    assert b"avro body" not in sealed
    aad = associated_data("events.birth", "dk-1", b"S1", HEADERS)
    assert open_sealed(CIPHER, sealed, aad) == b"\x00avro body"


def test_two_seals_of_one_value_differ():
    assert sealed_birth() != sealed_birth()


@pytest.mark.parametrize("topic, key_id, record_key, headers", [
    ("events.referral", "dk-1", b"S1", HEADERS),
    ("events.birth", "dk-2", b"S1", HEADERS),
    ("events.birth", "dk-1", b"S2", HEADERS),
    ("events.birth", "dk-1", None, HEADERS),
    ("events.birth", "dk-1", b"S1", (("handoff.event_id", b"e-2"), HEADERS[1])),
    ("events.birth", "dk-1", b"S1", HEADERS[::-1]),
    ("events.birth", "dk-1", b"S1", HEADERS[:1]),
], ids=["other-topic", "other-key-id", "other-record-key", "no-record-key",
        "changed-header", "reordered-headers", "dropped-header"])
def test_a_sealed_value_moved_or_relabelled_fails_to_open(topic, key_id, record_key, headers):
    with pytest.raises(SealedRecordError):
        open_sealed(CIPHER, sealed_birth(), associated_data(topic, key_id, record_key, headers))


def test_altered_or_truncated_values_fail_to_open():
    sealed = sealed_birth()
    aad = associated_data("events.birth", "dk-1", b"S1", HEADERS)
    for broken in (sealed[:-1], sealed[:10], b"", bytes([2]) + sealed[1:],
                   sealed[:20] + bytes([sealed[20] ^ 0x80]) + sealed[21:]):
        with pytest.raises(SealedRecordError):
            open_sealed(CIPHER, broken, aad)
