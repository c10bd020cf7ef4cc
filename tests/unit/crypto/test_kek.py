"""Key-encryption keys: the forms a KEK is read from, wrapping, and what errors say."""

from __future__ import annotations

import base64
import os

import pytest

from broker.crypto import DataKeyUnavailableError, KekError, LocalKek
from broker.crypto.kek import load_kek, new_kek_text, parse_kek, write_new_kek

MATERIAL = bytes(range(32))


@pytest.mark.parametrize("stored", [
    base64.b64encode(MATERIAL) + b"\n",
    MATERIAL.hex().encode(),
    MATERIAL,
], ids=["base64", "hex", "raw"])
def test_a_kek_reads_from_base64_hex_or_raw_bytes_as_the_same_key(stored):
    assert parse_kek(stored, "test").kek_id == LocalKek(MATERIAL).kek_id


def test_a_malformed_kek_is_refused_without_echoing_it():
    secretish = b"c2hvcnQta2V5LXRoYXQtaXMtbm90LTMyLWJ5dGVz"
    with pytest.raises(KekError) as caught:
        parse_kek(secretish, "HANDOFF_KEK")
    assert "HANDOFF_KEK" in str(caught.value)
    assert secretish.decode() not in str(caught.value)


def test_kek_ids_name_keys_apart_and_do_not_reveal_them():
    one, other = LocalKek(MATERIAL), LocalKek(os.urandom(32))
    assert one.kek_id != other.kek_id
    assert one.kek_id == LocalKek(MATERIAL).kek_id
    assert MATERIAL.hex()[:8] not in one.kek_id


def test_a_wrapped_key_unwraps_only_with_its_kek_and_context():
    kek, other = LocalKek(MATERIAL), LocalKek(os.urandom(32))
    wrapped = kek.wrap(b"k" * 32, b"context-a")
    assert kek.unwrap(wrapped, b"context-a") == b"k" * 32
    with pytest.raises(DataKeyUnavailableError):
        kek.unwrap(wrapped, b"context-b")
    with pytest.raises(DataKeyUnavailableError):
        other.unwrap(wrapped, b"context-a")
    with pytest.raises(DataKeyUnavailableError):
        kek.unwrap(wrapped[:-1] + bytes([wrapped[-1] ^ 1]), b"context-a")


def test_load_kek_prefers_the_file_and_names_a_missing_variable(tmp_path):
    path = tmp_path / "kek"
    path.write_bytes(new_kek_text())
    from_file = load_kek(path, "UNSET_VAR", {})
    assert from_file is not None
    assert load_kek(None, None, {}) is None
    with pytest.raises(KekError, match="UNSET_VAR"):
        load_kek(None, "UNSET_VAR", {})
    from_env = load_kek(None, "KEK", {"KEK": path.read_text()})
    assert from_env is not None and from_env.kek_id == from_file.kek_id


def test_write_new_kek_creates_an_owner_only_file_and_never_overwrites(tmp_path):
    path = tmp_path / "keys" / "kek"
    kek = write_new_kek(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert parse_kek(path.read_bytes(), "x").kek_id == kek.kek_id
    with pytest.raises(KekError, match="never overwritten"):
        write_new_kek(path)
    assert parse_kek(path.read_bytes(), "x").kek_id == kek.kek_id
