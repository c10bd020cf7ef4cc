"""Sealing one record value with AES-GCM, bound to where the record belongs.

A sealed value is `0x01 | nonce (12 bytes) | ciphertext | tag (16 bytes)`. The nonce
is random per record: offsets are unknown before an append, and 96 random bits keep the
chance of a repeat negligible for the number of records one data key ever encrypts
(one topic for one period). The associated data binds the topic, the data key's id, the
record key and a digest of the headers, so a sealed value moved to another topic, put
under another key or given other headers fails to open. Partition and offset are not
bound: they are assigned by the log after sealing.
"""

from __future__ import annotations

import hashlib
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.errors import CryptoError
from broker.log.port import Headers

FORMAT_V1 = 1
_NONCE_BYTES = 12
_OVERHEAD = 1 + _NONCE_BYTES + 16
_LENGTHS = struct.Struct(">HI")


class SealedRecordError(CryptoError):
    """A sealed value is malformed or fails authentication (altered, or moved)."""


def associated_data(topic: str, key_id: str, record_key: bytes | None, headers: Headers
                    ) -> bytes:
    digest = hashlib.sha256()
    if record_key is None:
        digest.update(b"\x00")
    else:
        digest.update(b"\x01" + struct.pack(">I", len(record_key)) + record_key)
    for name, value in headers:
        encoded = name.encode()
        digest.update(_LENGTHS.pack(len(encoded), len(value)) + encoded + value)
    return b"handoff/record/v1\0" + topic.encode() + b"\0" + key_id.encode() + b"\0" + \
        digest.digest()


def seal(cipher: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return bytes((FORMAT_V1,)) + nonce + cipher.encrypt(nonce, plaintext, aad)


def open_sealed(cipher: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < _OVERHEAD or sealed[0] != FORMAT_V1:
        raise SealedRecordError("sealed value is malformed or of an unknown format")
    try:
        return cipher.decrypt(sealed[1:1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise SealedRecordError("sealed value failed authentication") from exc
