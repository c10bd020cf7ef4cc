"""Encryption at rest through a running broker: what reaches the disk, restarts, a wrong
KEK, and KEK rotation (offline with the CLI, and online at start-up)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.bootstrap import build_broker
from broker.cli.main import app as cli
from broker.config import load_settings
from broker.crypto import KekError
from broker.crypto.kek import parse_kek, write_new_kek
from tests.e2e.harness import DEMO
from tests.integration.encryption.broker_fixture import (
    marked_birth,
    new_marker,
    publish,
    pull,
    running_broker,
    stored_bytes,
)

# A broker runs in the test's process (seconds a file): the full suite, not the fast lane.
pytestmark = pytest.mark.slow


def encryption(kek_file: Path, **more) -> dict:
    return {"encryption": {"enabled": True, "kek_file": kek_file, **more}}


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_personal_data_never_reaches_the_disk_in_clear_yet_reads_back(tmp_path, kek_file,
                                                                     encrypted):
    data = tmp_path / "data"
    marker = new_marker()
    settings = encryption(kek_file) if encrypted else {}
    with running_broker(data, **settings) as (client, runtime):
        events = [marked_birth(marker) for _ in range(5)]
        for event in events:
            publish(client, event)
        delivered = pull(client, expect=5)
        assert {d["event_id"] for d in delivered} == {e["event_id"] for e in events}
        # Readers of the log get the plaintext back.
        stored = [r for p in range(4) for r in runtime.log.read("events.birth", p, 0)]
        decoded = [runtime.codec.decode(r.value)[1] for r in stored]
        assert {d["mother"]["last_name"] for d in decoded} == {f"{marker}-last"}
    on_disk = stored_bytes(data)
    # The plain run is the control: it shows the search would find the marker.
    assert (marker.encode() in on_disk) is not encrypted


def test_deliveries_and_ingress_are_sealed_with_their_data_key_named(tmp_path, kek_file):
    data = tmp_path / "data"
    with running_broker(data, **encryption(kek_file)) as (client, _):
        publish(client, marked_birth(new_marker()))
        assert pull(client, expect=1)
    db = sqlite3.connect(data / "log.db")
    rows = db.execute("SELECT topic, value, headers FROM records WHERE topic LIKE 'events.%' "
                      "OR topic LIKE 'deliver.%'").fetchall()
    assert {r[0] for r in rows} >= {"events.birth", "deliver.eval-births"}
    for _topic, value, headers in rows:
        assert value[0] == 1, "sealed values start with format byte 1, not Avro's magic 0"
        assert b"handoff.data_key" in headers


@pytest.mark.slow
def test_a_restart_with_the_same_kek_reads_what_was_written_before(tmp_path, kek_file):
    data = tmp_path / "data"
    with running_broker(data, **encryption(kek_file)) as (client, _):
        publish(client, marked_birth(new_marker()))
        first = pull(client, expect=1)
    with running_broker(data, **encryption(kek_file)) as (client, _):
        publish(client, marked_birth(new_marker()))
        both = pull(client, expect=2)
    assert [d["event_id"] for d in both][:1] == [first[0]["event_id"]]
    assert len(both) == 2


def test_a_broker_given_another_kek_refuses_to_start_naming_both(tmp_path, kek_file):
    data = tmp_path / "data"
    with running_broker(data, **encryption(kek_file)) as (client, _):
        publish(client, marked_birth(new_marker()))
        assert pull(client, expect=1)
    stranger = write_new_kek(tmp_path / "other-kek")
    right = parse_kek(kek_file.read_bytes(), "kek")
    settings = load_settings(policy_dir=DEMO / "policy", data_dir=data,
                             keys_file=DEMO / "keys.yaml", **encryption(tmp_path / "other-kek"))
    with pytest.raises(KekError) as caught:
        build_broker(settings)
    assert right.kek_id in str(caught.value) and stranger.kek_id in str(caught.value)


@pytest.mark.slow
def test_rotate_kek_rewraps_keys_and_the_old_kek_is_no_longer_needed(tmp_path, kek_file):
    data = tmp_path / "data"
    with running_broker(data, **encryption(kek_file)) as (client, _):
        for _ in range(3):
            publish(client, marked_birth(new_marker()))
        before = pull(client, expect=3)
    old = parse_kek(kek_file.read_bytes(), "old")
    new_file = tmp_path / "new-kek"
    result = CliRunner().invoke(cli, ["encryption", "new-kek", "--out", str(new_file)])
    assert result.exit_code == 0, result.output
    new = parse_kek(new_file.read_bytes(), "new")

    result = CliRunner().invoke(cli, ["encryption", "rotate-kek", "--data", str(data),
                                      "--kek-file", str(kek_file),
                                      "--new-kek-file", str(new_file)])
    assert result.exit_code == 0, result.output
    assert f"from {old.kek_id} to {new.kek_id}" in result.output
    kek_file.unlink()   # the old KEK is gone for good

    with running_broker(data, **encryption(new_file)) as (client, _):
        after = pull(client, expect=3)
    assert [d["event_id"] for d in after] == [d["event_id"] for d in before]
    assert [d["data"] for d in after] == [d["data"] for d in before]
    # No wrapping by the old KEK is left in the key store (compacted at once).
    status = CliRunner().invoke(cli, ["encryption", "status", "--data", str(data)])
    assert status.exit_code == 0 and new.kek_id in status.output
    assert old.kek_id not in status.output
    keys = sqlite3.connect(data / "log.db").execute(
        "SELECT value FROM records WHERE topic = '_keys'").fetchall()
    assert keys and all(old.kek_id.encode() not in v for (v,) in keys)


@pytest.mark.slow
def test_online_rotation_rewraps_at_start_with_the_previous_kek(tmp_path, kek_file):
    data = tmp_path / "data"
    with running_broker(data, **encryption(kek_file)) as (client, _):
        publish(client, marked_birth(new_marker()))
        assert pull(client, expect=1)
    new_file = tmp_path / "new-kek"
    write_new_kek(new_file)
    with running_broker(data, **encryption(new_file, previous_kek_file=kek_file)) as (client, _):
        publish(client, marked_birth(new_marker()))
        assert len(pull(client, expect=2)) == 2
    kek_file.unlink()
    with running_broker(data, **encryption(new_file)) as (client, _):
        assert len(pull(client, expect=2)) == 2


def test_a_missing_kek_is_one_clear_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["encryption", "rotate-kek", "--data", str(tmp_path),
                                      "--kek-file", str(tmp_path / "absent"),
                                      "--new-kek-file", str(tmp_path / "absent-too")])
    assert result.exit_code == 2
    assert "absent" in result.output and "Traceback" not in result.output
