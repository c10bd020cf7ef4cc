"""`handoff audit …` as a compliance officer runs it."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from broker.audit import CheckpointSigner, SqliteAuditStore
from broker.audit.paths import (
    audit_db_path,
    pseudonym_key_path,
    signing_key_path,
    signing_public_key_path,
)
from broker.cli.main import app
from tests.integration.audit.conftest import RECOUNT

runner = CliRunner()


def handoff(*args):
    return runner.invoke(app, ["audit", *map(str, args)])


@pytest.fixture
def broker_data(data_dir, store, decision, pseudonym_key):
    """A data directory as the embedded broker leaves it: store, keys, checkpoints."""
    signer = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    pseudonym_key_path(data_dir).write_bytes(pseudonym_key)
    store.append([decision(f"MPI-{n % 3}", n) for n in range(30)])
    signer.checkpoint(store)
    store.append([decision("MPI-0048213", 30), decision("MPI-0048213", 31, outcome="deny")])
    signer.checkpoint(store)
    store.close()
    return data_dir


def test_verify_ok_prints_a_one_line_summary(broker_data):
    with SqliteAuditStore(audit_db_path(broker_data), create=False) as store:
        head = store.head()[1]
    result = handoff("verify", "--data", broker_data,
                     "--public-key", signing_public_key_path(broker_data))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok: 32 records, 2 checkpoints, head sha256:{head}\n"


def test_verify_names_the_first_bad_record_and_exits_1(broker_data, tamper):
    tamper("UPDATE audit_records SET recipient = 'cw-hotline' WHERE seq = 12")
    result = handoff("verify", "--data", broker_data)
    assert result.exit_code == 1
    assert result.stdout == "FAILED: record 12: hash mismatch (content changed)\n"


def test_verify_json_report(broker_data, tamper):
    tamper("DELETE FROM audit_records WHERE seq = 5")
    result = handoff("verify", "--data", broker_data, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["first_bad_seq"] == 5
    assert report["problem"] == "record 5: missing (sequence jumps from 4 to 6)"


def test_verify_with_a_pinned_key_that_did_not_sign_fails(broker_data, tmp_path):
    CheckpointSigner.load_or_create(tmp_path / "elsewhere" / "other.pem")
    result = handoff("verify", "--data", broker_data,
                     "--public-key", tmp_path / "elsewhere" / "other.pem.pub")
    assert result.exit_code == 1
    assert "checkpoint 1 at record 30: signature invalid (signed by key" in result.stdout


def test_verify_checks_exported_checkpoints_kept_elsewhere(broker_data, tmp_path, tamper):
    kept = tmp_path / "kept-checkpoints.jsonl"
    assert handoff("checkpoints", "--data", broker_data, "--out", kept).exit_code == 0
    tamper("DELETE FROM audit_records WHERE seq > 20", "DELETE FROM audit_checkpoints",
           *RECOUNT)
    assert handoff("verify", "--data", broker_data).exit_code == 0
    result = handoff("verify", "--data", broker_data, "--checkpoints", kept)
    assert result.exit_code == 1
    assert result.stdout == (
        "FAILED: chain ends at record 20 but checkpoint 1 covers record 30 (truncated)\n"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["verify", "--data", "{missing}"], "no data directory"),
        (["verify", "--data", "{empty}"], "no audit store"),
        (["verify", "--data", "{data}", "--public-key", "{missing}"], "cannot read"),
        (["export", "--data", "{empty}"], "no audit store"),
        (["checkpoints", "--data", "{empty}"], "no audit store"),
        (["disclosures", "--data", "{data}", "--subject", "x",
          "--pseudonym-key-file", "{missing}"], "cannot read the subject pseudonym key"),
        (["export", "--data", "{data}", "--since", "yesterday"], "--since must be"),
        (["export", "--data", "{data}", "--since", "2024-06-02", "--until", "2024-06-01"],
         "ends before it starts"),
        (["disclosures", "--data", "{data}"], "give --subject or --subject-pseudonym"),
        (["disclosures", "--data", "{data}", "--subject-pseudonym", "MPI-1"], "must look like"),
    ],
)
def test_usage_errors_exit_2(broker_data, tmp_path, arguments, message):
    (tmp_path / "empty").mkdir()
    places = {"missing": tmp_path / "missing", "empty": tmp_path / "empty",
              "data": broker_data}
    result = handoff(*(argument.format(**places) for argument in arguments))
    assert result.exit_code == 2
    assert message in result.stderr


def test_verify_without_a_data_option_is_a_usage_error():
    assert handoff("verify").exit_code == 2


def test_export_jsonl_to_a_file(broker_data, tmp_path):
    out = tmp_path / "audit.jsonl"
    result = handoff("export", "--data", broker_data, "--format", "jsonl", "--out", out)
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 33))
    assert "exported 32 records" in result.stderr


def test_export_csv_filtered_by_raw_subject_and_outcome(broker_data):
    result = handoff("export", "--data", broker_data, "--format", "csv",
                     "--subject", "MPI-0048213", "--outcome", "deny")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["seq"], row["outcome"]) for row in rows] == [("32", "deny")]
    assert "MPI-0048213" not in result.stdout


def test_export_filtered_by_time(broker_data):
    result = handoff("export", "--data", broker_data, "--since", "2024-06-01T12:00:05Z",
                     "--until", "1717243210000")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [6, 7, 8, 9, 10]


def test_checkpoints_export_as_json_lines(broker_data):
    result = handoff("checkpoints", "--data", broker_data)
    assert result.exit_code == 0
    exported = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(item["number"], item["seq"]) for item in exported] == [(1, 30), (2, 32)]
    assert signing_public_key_path(broker_data).exists()


def test_disclosures_table_uses_the_default_pseudonym_key(broker_data):
    result = handoff("disclosures", "--data", broker_data, "--subject", "MPI-0048213")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith(": 1 disclosures")
    assert lines[1].split()[:3] == ["DATE", "(UTC)", "RECIPIENT"]
    assert len(lines) == 3
    row = lines[2]
    for expected in ("2024-06-01T12:00:30Z", "hv-nfp", "hv-births", "birth",
                     "care_coordination", "mother.given_name, mother.phone, "
                     "mother.address.zip", "cg-hv-births; 45 CFR 164.506(c)(4)",
                     "consent-17"):
        assert expected in row
    assert "MPI-0048213" not in result.stdout


def test_disclosures_as_json(broker_data, pseudonymizer):
    result = handoff("disclosures", "--data", broker_data, "--subject", "MPI-1", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["subject_pseudonym"] == pseudonymizer.pseudonym("MPI-1")
    assert [item["seq"] for item in report["disclosures"]] == [2, 5, 8, 11, 14, 17, 20,
                                                               23, 26, 29]
    assert report["disclosures"][0]["data_disclosed"] == [
        "mother.given_name", "mother.phone", "mother.address.zip"]


def test_disclosures_by_pseudonym_need_no_key(broker_data, pseudonymizer):
    pseudonym_key_path(broker_data).unlink()
    result = handoff("disclosures", "--data", broker_data, "--json",
                     "--subject-pseudonym", pseudonymizer.pseudonym("MPI-0048213"))
    assert result.exit_code == 0, result.output
    assert [d["seq"] for d in json.loads(result.stdout)["disclosures"]] == [31]


def test_a_corrupt_store_fails_verification(data_dir):
    (data_dir / "audit.db").write_bytes(b"this is not a database" * 100)
    result = handoff("verify", "--data", data_dir, "--chain-only")
    assert result.exit_code == 1
    assert "audit store" in result.stderr


def test_disclosures_for_someone_never_disclosed(broker_data):
    result = handoff("disclosures", "--data", broker_data, "--subject", "MPI-unknown")
    assert result.exit_code == 0
    assert result.stdout.endswith(": 0 disclosures\n")
