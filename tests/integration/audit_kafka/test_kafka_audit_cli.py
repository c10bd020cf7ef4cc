"""`handoff audit verify|checkpoints --kafka` as a compliance officer runs them."""

from __future__ import annotations

import json
import sqlite3

from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from broker.audit.kafka_records import AUDIT_TOPIC
from broker.cli.main import app
from broker.log.port import NewRecord
from tests.integration.audit_kafka.conftest import decision, read_topic

runner = CliRunner()


def handoff(*args):
    return runner.invoke(app, ["audit", *map(str, args)])


def write_public_key(signer, path):
    path.write_bytes(signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def test_verify_against_kafka_prints_a_summary(space, signer, tmp_path):
    store = space.store()
    store.append([decision(n) for n in range(12)])
    checkpoint = signer.checkpoint(store)
    key = write_public_key(signer, tmp_path / "audit.pub")
    result = handoff("verify", "--kafka", space.broker.bootstrap_servers,
                     "--topic-prefix", space.prefix, "--public-key", key)
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"ok: 12 records in 1 chain, 1 checkpoints, heads "
                             f"sha256:{checkpoint.hash} at position 12\n")


def test_verify_against_kafka_names_the_first_bad_record_and_exits_1(space, signer, tmp_path):
    store = space.store()
    store.append([decision(n) for n in range(3)])
    log = space.log()
    first = read_topic(log, AUDIT_TOPIC)[0]
    log.append(AUDIT_TOPIC, [NewRecord(value=first.value, key=first.key, headers=first.headers)])
    result = handoff("verify", "--kafka", space.broker.bootstrap_servers,
                     "--topic-prefix", space.prefix, "--chain-only", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["problem"] == (f"chain {store.chain} record 1: appears twice (again at "
                                 "position 4; forged, or written by a second writer)")
    assert (report["first_bad_chain"], report["first_bad_seq"]) == (store.chain, 1)


def test_verify_with_settings_selecting_kafka(space, tmp_path, monkeypatch):
    space.store().append([decision(1)])
    config = tmp_path / "handoff.yaml"
    config.write_text(f"log: {{backend: kafka}}\nkafka: {{bootstrap_servers: "
                      f"'{space.broker.bootstrap_servers}', topic_prefix: '{space.prefix}'}}\n")
    result = handoff("verify", "--config", config, "--chain-only")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: 1 records in 1 chain")


def test_verify_exits_2_when_the_prefix_holds_no_audit_log(space):
    result = handoff("verify", "--kafka", space.broker.bootstrap_servers,
                     "--topic-prefix", "nothing-here.", "--chain-only")
    assert result.exit_code == 2
    assert "no audit log in Kafka" in result.output


def test_exported_checkpoints_round_trip_through_verify(space, signer, tmp_path):
    store = space.store()
    store.append([decision(n) for n in range(4)])
    signer.checkpoint(store)
    out = tmp_path / "checkpoints.jsonl"
    result = handoff("checkpoints", "--kafka", space.broker.bootstrap_servers,
                     "--topic-prefix", space.prefix, "--out", out)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["seq"] for line in out.read_text().splitlines()] == [4]
    result = handoff("verify", "--kafka", space.broker.bootstrap_servers, "--topic-prefix",
                     space.prefix, "--checkpoints", out,
                     "--public-key", write_public_key(signer, tmp_path / "k.pub"))
    assert result.exit_code == 0, result.output


def test_the_accounting_of_disclosures_from_kafka(space, tmp_path):
    store = space.store()
    store.append([decision(n, "MPI-0048213" if n % 2 else "MPI-7") for n in range(6)])
    key = tmp_path / "subject.key"
    key.write_bytes(bytes(range(32)))   # the key the test pseudonyms are made with
    result = handoff("disclosures", "--kafka", space.broker.bootstrap_servers,
                     "--topic-prefix", space.prefix, "--subject", "MPI-0048213",
                     "--pseudonym-key-file", key, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["disclosures"]
    assert [d["event_id"] for d in found] == ["ev-1", "ev-3", "ev-5"]
    assert "MPI-0048213" not in result.stdout


def test_verify_without_any_key_refuses_unless_chain_only(space, tmp_path):
    space.store().append([decision(1)])
    where = ["--kafka", space.broker.bootstrap_servers, "--topic-prefix", space.prefix,
             "--data", tmp_path]
    refused = handoff("verify", *where)
    assert refused.exit_code == 2
    assert "no public key to check checkpoint signatures against" in refused.stderr
    chain_only = handoff("verify", *where, "--chain-only")
    assert chain_only.exit_code == 0, chain_only.output
    assert chain_only.stdout.startswith("ok: 1 records in 1 chain, 0 checkpoints")


def test_verify_checks_the_index_queries_read_in_the_data_directory(space, signer, tmp_path):
    writer = space.store()
    writer.append([decision(n) for n in range(5)])
    signer.checkpoint(writer)
    api = space.store("api", index="data/audit-index.db")
    assert len(list(api.iter_records())) == 5
    key = write_public_key(signer, tmp_path / "pinned.pub")
    where = ["--kafka", space.broker.bootstrap_servers, "--topic-prefix", space.prefix,
             "--data", tmp_path / "data", "--public-key", key]
    index = tmp_path / "data" / "audit-index.db"
    sound = handoff("verify", *where)
    assert sound.exit_code == 0, sound.output
    assert sound.stdout.rstrip().endswith(f"; index {index} matches")

    conn = sqlite3.connect(index)
    conn.execute("UPDATE audit_records SET outcome = 'deny' WHERE seq = 3")
    conn.commit()
    conn.close()
    caught = handoff("verify", *where)
    assert caught.exit_code == 1
    assert caught.stdout.startswith(f"FAILED: audit index {index}: the record at position 3 ")
    assert handoff("verify", *where, "--index", tmp_path / "absent.db").exit_code == 2
