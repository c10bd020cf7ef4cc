"""Exports: JSON lines re-verify with the documented algorithm; CSV is flat."""

from __future__ import annotations

import csv
import hashlib
import io
import json

from broker.audit import AuditEntry, AuditFilter, export_csv, export_jsonl
from broker.audit.export import CSV_COLUMNS


def verify_jsonl_as_documented(lines):
    """The auditor's snippet from docs/audit.md, verbatim in spirit."""
    prev = "00" * 32
    for line in lines:
        record = json.loads(line)
        claimed = record.pop("hash")
        body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert record["prev_hash"] == prev, f"record {record['seq']}: broken link"
        digest = hashlib.sha256(bytes.fromhex(prev) + body.encode("utf-8")).hexdigest()
        assert digest == claimed, f"record {record['seq']}: hash mismatch"
        prev = claimed
    return prev


def test_jsonl_export_reverifies_independently(filled, pseudonymizer):
    filled.append([
        AuditEntry(kind="consent_change", at_ms=9, subject=pseudonymizer.pseudonym("Zoë"),
                   outcome="granted", detail={"note": "naïve \"quoted\" 日本語"}),
    ])
    out = io.StringIO()
    assert export_jsonl(filled, out) == 41
    lines = out.getvalue().splitlines()
    assert len(lines) == 41
    assert verify_jsonl_as_documented(lines) == filled.head()[1]
    assert "日本語" in lines[-1]  # written as UTF-8, not \u escapes


def test_filtered_jsonl_export_records_each_verify_alone(filled, pseudonymizer):
    out = io.StringIO()
    pseudonym = pseudonymizer.pseudonym("MPI-1")
    assert export_jsonl(filled, out, AuditFilter(subject=pseudonym)) == 10
    for line in out.getvalue().splitlines():
        record = json.loads(line)
        assert record["subject"] == pseudonym
        claimed = record.pop("hash")
        body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(bytes.fromhex(record["prev_hash"]) + body.encode()).hexdigest()
        assert digest == claimed


def test_csv_export_has_flat_columns_and_detail_as_json(filled):
    out = io.StringIO()
    assert export_csv(filled, out, AuditFilter(until_ms=1_717_243_203_000)) == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [row["seq"] for row in rows] == ["1", "2", "3"]
    first = rows[0]
    assert first["at"] == "2024-06-01T12:00:00.000Z"
    assert first["recipient"] == "hv-nfp"
    assert json.loads(first["detail"])["purpose"] == "care_coordination"
    assert first["hash"] == next(filled.iter_records()).hash


def test_empty_export_writes_only_the_csv_header(store):
    out = io.StringIO()
    assert export_csv(store, out) == 0
    assert out.getvalue() == ",".join(CSV_COLUMNS) + "\n"
