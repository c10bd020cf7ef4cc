"""Reading audit records back from Kafka values: only exact canonical lines pass, and the
bytes hashed are the ones an auditor's `json.dumps` produces."""

from __future__ import annotations

import hashlib
import json

import pytest

from broker.audit.errors import AuditFormatError
from broker.audit.kafka_records import (
    checkpoint_value,
    cut_tail,
    heads_digest,
    parse_line,
    read_checkpoint,
    reassemble,
    tail_reference,
)
from broker.audit.records import AuditRecord, Checkpoint

DETAIL = {"event_type": "birth", "fields": [{"path": "mother.ssn", "status": "withheld"}],
          "note": "naïve \"quoted\" ,\"event_id\": inside"}


def record(**changes: object) -> dict:
    values = {
        "actor": "router", "agreement": "cg-hv-births", "at_ms": 1_717_243_200_000,
        "decision_id": "d" * 32, "detail": DETAIL, "event_id": "ev-1",
        "kind": "decision", "outcome": "permit", "prev_hash": "00" * 32,
        "recipient": "hv-nfp", "seq": 1, "source": "county-general",
        "subject": "sp_" + "a" * 32, "subscription": "hv-births",
    }
    values.update(changes)
    body = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    values["hash"] = hashlib.sha256(bytes(32) + body.encode()).hexdigest()
    return values


def line(values: dict) -> bytes:
    return json.dumps(values, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def test_a_canonical_line_is_taken_apart_into_what_its_hash_covers():
    values = record()
    parsed = parse_line(line(values))
    assert parsed.seq == 1 and parsed.hash.hex() == values["hash"]
    claimed = values.pop("hash")
    assert hashlib.sha256(parsed.prev_hash + parsed.body).hexdigest() == claimed
    assert parsed.body == line(values)
    assert json.loads(parsed.detail) == DETAIL


def test_the_line_is_what_the_exported_record_writes():
    values = record()
    exported = AuditRecord.from_dict(values).to_json_line().encode()
    assert exported == line(values)
    assert parse_line(exported).hash.hex() == values["hash"]


@pytest.mark.parametrize("mangle", [
    lambda raw: raw.replace(b'","', b'", "', 1),              # whitespace
    lambda raw: raw[:-1] + b',"extra":1}',                      # an attribute too many
    lambda raw: raw.replace(b'"seq":1', b'"seq":"1"'),          # wrong type
    lambda raw: raw.replace(b'"actor":"router"', b'"actor":{"detail":1}'),
    lambda raw: raw.replace(b'"detail":{', b'"detail":[{', 1),  # detail not an object
    lambda raw: raw[:40],                                       # cut short
    lambda raw: b"not json at all",
])
def test_anything_but_an_exact_canonical_line_is_refused(mangle):
    with pytest.raises(AuditFormatError):
        parse_line(mangle(line(record())))


def test_a_shared_tail_cut_out_is_put_back_exactly():
    raw = line(record())
    detail = json.dumps(DETAIL, sort_keys=True, separators=(",", ":"),
                        ensure_ascii=False).encode()
    head, tail = detail[:10], detail[10:]
    value, at = cut_tail(raw, head, tail)
    assert len(value) == len(raw) - len(tail)
    headers = (("handoff.audit.tail", b"x" * 64), ("handoff.audit.tail_at", str(at).encode()))
    reference = tail_reference(headers)
    assert reference == ("x" * 64, at)
    assert reassemble(value, reference, tail) == raw
    with pytest.raises(AuditFormatError, match="missing shared part"):
        reassemble(value, reference, None)


def test_the_heads_digest_does_not_depend_on_the_order_chains_are_listed():
    heads = [("router-b", 4, b"\x02" * 32), ("router-a", 7, b"\x01" * 32)]
    assert heads_digest(heads) == heads_digest(list(reversed(heads)))
    listed = json.dumps([["router-a", 7, "01" * 32], ["router-b", 4, "02" * 32]],
                        separators=(",", ":")).encode()
    assert heads_digest(heads) == hashlib.sha256(b"handoff-audit-heads-v1\n" + listed).hexdigest()


def test_checkpoints_round_trip_with_and_without_a_chain():
    checkpoint = Checkpoint(0, 12, "ab" * 32, 5, "ed25519:0011223344556677", b"\x07" * 64)
    assert read_checkpoint(3, checkpoint_value(checkpoint)) == (
        Checkpoint(3, 12, "ab" * 32, 5, "ed25519:0011223344556677", b"\x07" * 64), None)
    assert read_checkpoint(1, checkpoint_value(checkpoint, "embedded-0a1b"))[1] == "embedded-0a1b"
    with pytest.raises(AuditFormatError):
        read_checkpoint(1, b'{"seq": 1}')
