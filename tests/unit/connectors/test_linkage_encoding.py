"""The connector-side helper that turns identity records into CLKs."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from connectors.linkage_encoding import ClkEncoder, EncodingError, clk_fields, load_schema
from tests.unit.linkage.linkage_people import hospital, hotline


def test_a_short_secret_is_refused_without_echoing_it():
    with pytest.raises(EncodingError, match="at least 32") as err:
        ClkEncoder.create(b"tooshort")
    assert "tooshort" not in str(err.value)


def test_a_missing_secret_file_names_the_file(tmp_path):
    with pytest.raises(EncodingError, match=r"secret\.key"):
        ClkEncoder.from_secret_file(tmp_path / "secret.key")


def test_a_broken_schema_file_names_the_file(tmp_path):
    broken = tmp_path / "agreement-schema.json"
    broken.write_text("{not json")
    with pytest.raises(EncodingError, match=r"agreement-schema\.json"):
        load_schema(path=broken)


def test_fields_are_normalised_as_the_broker_normalises_them():
    assert clk_fields(hospital())[:3] == clk_fields(hotline())[:3]
    assert clk_fields(hospital(given_name="Beth")) == (
        "elizabeth", "lindqvist", "19950514", "f", "53703")


def test_an_encoding_is_1024_bits_of_base64(tmp_path: Path):
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    clk = ClkEncoder.from_secret_file(secret).encode(hospital())
    assert len(base64.b64decode(clk)) == 128
