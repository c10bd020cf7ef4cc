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

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.errors import CryptoError
from broker.log.port import Headers

FORMAT_V1 = 1
_NONCE_BYTES = 12
_OVERHEAD = 1 + _NONCE_BYTES + 16


class SealedRecordError(CryptoError):
    """A sealed value is malformed or fails authentication (altered, or moved)."""


def associated_data(topic: str, key_id: str, record_key: bytes | None, headers: Headers
                    ) -> bytes:
    """The bytes AES-GCM authenticates beside a value: a label, the topic, the data
    key's id, and a SHA-256 over the record key and every header (name and value, each
    length-prefixed, in order)."""
    parts = [b"\x00" if record_key is None
             else b"\x01" + len(record_key).to_bytes(4, "big") + record_key]
    add = parts.append
    for name, value in headers:
        prefix = _NAME_PREFIXES.get(name)
        if prefix is None:
            prefix = _name_prefix(name)
        add(prefix)
        add(len(value).to_bytes(4, "big"))
        add(value)
    digest = hashlib.sha256(b"".join(parts)).digest()
    return b"handoff/record/v1\0" + topic.encode() + b"\0" + key_id.encode() + b"\0" + digest


_NAME_PREFIXES: dict[str, bytes] = {}
"""Encoded header names with their length: the same few names recur on every record."""


def _name_prefix(name: str) -> bytes:
    encoded = name.encode()
    prefix = len(encoded).to_bytes(2, "big") + encoded
    if len(_NAME_PREFIXES) < 4096:
        _NAME_PREFIXES[name] = prefix
    return prefix


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
