"""Retention: shredded records become unreadable without stalling readers; a running
broker deletes, shreds and audits, and the audit chain still verifies."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from typer.testing import CliRunner

from broker.audit.store import AuditFilter
from broker.cli.main import app as cli
from broker.crypto import LocalKek
from broker.crypto.encrypted_log import register_encryption_metrics
from broker.log import NewRecord, SqliteEventLog, TopicSpec
from tests.integration.encryption.broker_fixture import (
    marked_birth,
    new_marker,
    publish,
    pull,
    running_broker,
    stored_bytes,
)
from tests.integration.encryption.conftest import _opener, encrypted
from tests.waiting import eventually

PERIOD_MS = 60_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000 * PERIOD_MS

    def __call__(self) -> int:
        return self.now


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.slow)])
def two_periods(request, tmp_path):
    """A topic with records of an old period (offsets 0-4), then of a new one (5-7), on a
    log whose clock the test sets; nothing is deleted, only keys shredded."""
    _, open_inner = _opener(request.param, request, tmp_path)
    clock = Clock()
    log = encrypted(open_inner(), LocalKek(bytes(range(32))), period_ms=PERIOD_MS,
                    clock=clock)
    topic = "events.birth"
    log.ensure_topic(TopicSpec(topic, partitions=1))
    log.append(topic, [NewRecord(f"old {n}".encode(), key=b"S") for n in range(5)])
    clock.now += PERIOD_MS
    log.append(topic, [NewRecord(f"new {n}".encode(), key=b"S") for n in range(3)])
    yield log, topic, clock
    log.close()


def test_reads_skip_shredded_records_and_go_on_to_readable_ones(two_periods):
    log, topic, clock = two_periods
    shredded = log.keyring.shred_expired(topic, cutoff_ms=clock.now)
    assert len(shredded) == 1

    assert [r.value for r in log.read(topic, 0, 0)] == [b"new 0", b"new 1", b"new 2"]
    assert log.read(topic, 0, 0, max_records=2)[0].offset == 5
    registry = CollectorRegistry()
    register_encryption_metrics(log, registry)
    assert b'handoff_records_unreadable_total{reason="shredded",topic="events.birth"}' \
        in generate_latest(registry)


def test_a_consumer_polls_past_shredded_records(two_periods):
    log, topic, clock = two_periods
    log.keyring.shred_expired(topic, cutoff_ms=clock.now)
    consumer = log.consumer("shred-test", [topic])
    seen: list[bytes] = []

    def polled_three() -> bool:
        seen.extend(r.value for r in consumer.poll(0.2))
        return len(seen) >= 3

    eventually(polled_three, timeout=20, interval=0, message=lambda: f"polled only {seen}")
    consumer.close()
    assert seen == [b"new 0", b"new 1", b"new 2"]


def test_wait_does_not_report_a_tail_of_shredded_records(two_periods):
    log, topic, clock = two_periods
    clock.now += 2 * PERIOD_MS
    log.keyring.shred_expired(topic, cutoff_ms=clock.now)   # both periods
    assert log.read(topic, 0, 0) == []
    assert log.wait({(topic, 0): 0}, timeout=0.3) is False
    log.append(topic, [NewRecord(b"fresh", key=b"S")])
    assert log.wait({(topic, 0): 0}, timeout=5) is True
    assert [r.value for r in log.read(topic, 0, 0)] == [b"fresh"]


def _retained(kek_file: Path) -> dict:
    return {
        "encryption": {"enabled": True, "kek_file": kek_file, "key_period": 1},
        "retention": {"events": {"birth": 1}, "subscriptions": {"eval-births": 1},
                      "interval": 0.3},
    }


@pytest.mark.slow
def test_a_running_broker_deletes_shreds_and_audits_and_the_chain_verifies(tmp_path,
                                                                         kek_file):
    data = tmp_path / "data"
    marker = new_marker()
    with running_broker(data, **_retained(kek_file)) as (client, runtime):
        events = [marked_birth(marker) for _ in range(4)]
        for event in events:
            publish(client, event)
        assert len(pull(client, expect=4)) == 4
        store = runtime.audit

        def shredded_both() -> list | None:
            enforced = list(store.iter_records(AuditFilter(kind="retention_enforced")))
            shredded = {t for r in enforced for t in r.detail["keys_shredded"]}
            return enforced if {"events.birth", "deliver.eval-births"} <= shredded else None

        enforced = eventually(shredded_both, timeout=20, interval=0.2, message=(
            "no retention_enforced audit record shreds both events.birth and "
            "deliver.eval-births"))
        assert sum(r.detail["records_deleted"] for r in enforced) >= 8
        # The subscriber's feed from the start is now empty, and says so cleanly.
        assert pull(client, expect=0, timeout=1) == []
        metrics = client.get("/metrics").text
        assert "handoff_data_keys_shredded_total" in metrics

    db = sqlite3.connect(data / "log.db")
    assert db.execute("SELECT COUNT(*) FROM records WHERE topic IN "
                      "('events.birth', 'deliver.eval-births')").fetchone() == (0,)
    result = CliRunner().invoke(cli, ["audit", "verify", "--data", str(data)])
    assert result.exit_code == 0, result.output
    # Decisions about the expired events are still in the audit log.
    with running_broker(data, **_retained(kek_file)) as (_, runtime):
        decided = {r.event_id for r in
                   runtime.audit.iter_records(AuditFilter(kind="decision"))}
    assert {e["event_id"] for e in events} <= decided
    assert marker.encode() not in stored_bytes(data)


def test_an_altered_record_is_skipped_and_counted_as_tampered(tmp_path):
    path = tmp_path / "log.db"
    log = encrypted(SqliteEventLog(path), LocalKek(bytes(range(32))))
    log.ensure_topic(TopicSpec("events.birth"))
    log.append("events.birth", [NewRecord(f"v{n}".encode(), key=b"S",
                                          headers=(("handoff.source", b"cg"),))
                                for n in range(3)])
    db = sqlite3.connect(path)
    where = "WHERE topic = 'events.birth' AND offset = 1"
    (value,) = db.execute(f"SELECT value FROM records {where}").fetchone()
    altered = value[:-1] + bytes([value[-1] ^ 1])
    db.execute(f"UPDATE records SET value = ? {where}", (altered,))
    db.commit()

    assert [r.value for r in log.read("events.birth", 0, 0)] == [b"v0", b"v2"]
    assert log.unreadable_counts() == {("events.birth", "tampered"): 1}
    log.close()
