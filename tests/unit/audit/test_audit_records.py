"""The canonical encoding and hashing that an auditor re-implements from docs/audit.md."""

from __future__ import annotations

import hashlib
import json

import pytest

from broker.audit import AuditEntry, AuditEntryError, AuditKind, AuditRecord
from broker.audit.records import (
    GENESIS_HASH,
    CanonicalDetail,
    canonical_detail,
    chain_hash,
    checkpoint_message,
    encode_row,
)

PSEUDONYM = "sp_" + "ab" * 16


def documented_body(record: dict) -> bytes:
    """The algorithm exactly as docs/audit.md states it."""
    without_hash = {key: value for key, value in record.items() if key != "hash"}
    return json.dumps(
        without_hash, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


TRICKY_TEXTS = [
    "plain",
    'quote " and backslash \\',
    "newline\nand tab\t and \x01 control",
    "accents: Zoë Núñez, 日本語, emoji 👶",
    "line separator \u2028 and \u2029",
    "",
]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_template_encoding_is_byte_identical_to_documented_json(text):
    detail = {"reason": text, "released": ["a.b", text], "nested": {"z": 1, "a": [None, True]}}
    row = (
        7, "decision", 1_700_000_000_123, PSEUDONYM, text, "src", None, "sub", "permit",
        text, "dec", None, canonical_detail("decision", detail), bytes(range(32)),
        bytes(32),
    )
    record = AuditRecord.from_row(row)
    assert encode_row(row) == documented_body(record.to_dict())
    line = encode_row(row, with_hash=True).decode("utf-8")
    assert line == json.dumps(
        record.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def test_hash_is_sha256_of_previous_hash_and_body():
    body = b'{"seq":1}'
    assert chain_hash(GENESIS_HASH, body) == hashlib.sha256(bytes(32) + body).digest()


def test_record_hash_recomputes_and_detects_a_changed_attribute():
    row = (
        1, "decision", 5, PSEUDONYM, "hv-nfp", "county-general", "vr-hv", "hv-births",
        "permit", "e1", "d1", "router", canonical_detail("decision", {"released": ["x"]}),
        GENESIS_HASH, b"",
    )
    digest = chain_hash(GENESIS_HASH, encode_row(row))
    record = AuditRecord.from_row((*row[:14], digest))
    assert record.computed_hash() == record.hash
    changed = AuditRecord.from_dict({**record.to_dict(), "recipient": "someone-else"})
    assert changed.computed_hash() != record.hash


def test_exported_line_reads_back_as_the_same_record():
    row = (
        3, "consent_change", 9, None, None, "hv-nfp", None, None, "granted", None, None,
        "key-1", canonical_detail("consent_change", {"consent_id": "c-9"}), bytes(32),
        bytes(range(32)),
    )
    record = AuditRecord.from_row(row)
    assert AuditRecord.from_dict(json.loads(record.to_json_line())) == record


@pytest.mark.parametrize(
    "subject",
    ["MPI-0048213", "sp_" + "AB" * 16, "sp_" + "ab" * 15, "sp_" + "ab" * 17, "ab" * 16, ""],
)
def test_entry_refuses_anything_but_a_subject_pseudonym(subject):
    with pytest.raises(AuditEntryError) as info:
        AuditEntry(kind="decision", at_ms=1, subject=subject)
    assert "pseudonym" in str(info.value)
    if subject:
        assert subject not in str(info.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": ""}, "kind"),
        ({"kind": "Decision"}, "kind"),
        ({"at_ms": -1}, "at_ms"),
        ({"at_ms": 1.5}, "at_ms"),
        ({"at_ms": True}, "at_ms"),
        ({"recipient": 42}, "recipient"),
        ({"detail": ["not", "a", "mapping"]}, "detail"),
    ],
)
def test_entry_refuses_malformed_attributes(changes, message):
    with pytest.raises(AuditEntryError, match=message):
        AuditEntry(**{"kind": "decision", "at_ms": 1, **changes})


def test_entry_kind_accepts_the_enum_and_new_kinds_alike():
    assert AuditEntry(kind=AuditKind.DECISION, at_ms=1).kind == "decision"
    assert type(AuditEntry(kind=AuditKind.DECISION, at_ms=1).kind) is str
    assert AuditEntry(kind="key_rotated", at_ms=1).kind == "key_rotated"


@pytest.mark.parametrize("value", [float("nan"), object(), b"bytes", {1, 2}])
def test_detail_that_is_not_plain_json_is_refused_without_echoing_it(value):
    with pytest.raises(AuditEntryError, match="not JSON-ready"):
        canonical_detail("decision", {"field": value})


def test_checkpoint_message_is_domain_tag_then_canonical_json():
    message = checkpoint_message(50000, "ab" * 32, 1_700_000_000_000)
    assert message == (
        b"handoff-audit-checkpoint-v1\n"
        + b'{"at_ms":1700000000000,"hash":"' + b"ab" * 32 + b'","seq":50000}'
    )


def test_pre_encoded_detail_is_used_as_given_and_read_lazily():
    text = '{"purpose":"care_coordination","released":["mother.phone"]}'
    detail = CanonicalDetail(text)
    assert canonical_detail("decision", detail) == text
    assert detail == {"purpose": "care_coordination", "released": ["mother.phone"]}
    assert detail["released"] == ["mother.phone"]


def test_pre_encoded_ascii_escapes_are_stored_as_utf8_like_any_detail():
    value = {"reason": "Zoë § 2.32", "control": "a\x01b"}
    ascii_text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    assert "\\u00eb" in ascii_text
    assert canonical_detail("decision", CanonicalDetail(ascii_text)) == canonical_detail(
        "decision", value
    )


@pytest.mark.parametrize("value", [
    {"quote": 'say "hi"', "slash": "a\\b", "reason": "Zoë"},   # escapes, none of them \u
    {"quote": 'say "hi"', "control": "a\x01b"},                  # \" before a \u escape
])
def test_pre_encoded_detail_with_escapes_is_stored_as_the_canonical_text(value):
    for ascii_only in (False, True):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=ascii_only)
        assert canonical_detail("decision", CanonicalDetail(text)) == canonical_detail(
            "decision", value)


@pytest.mark.parametrize("text", ["[1,2]", "", '"text"', '{"broken":'])
def test_pre_encoded_detail_must_be_a_json_object(text):
    with pytest.raises(AuditEntryError):
        canonical_detail("decision", CanonicalDetail(text))


def test_text_that_cannot_be_utf8_is_refused():
    with pytest.raises(AuditEntryError, match="recipient"):
        AuditEntry(kind="decision", at_ms=1, recipient="bad \ud800 surrogate")
