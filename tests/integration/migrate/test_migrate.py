"""`handoff migrate`: an embedded data directory moved to Kafka keeps every record, the
router's place, idempotent publishing and a verifiable audit log; an interrupted
migration continues; a target in use is refused."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Sequence

import pytest
from typer.testing import CliRunner

from broker.audit import CheckpointSigner, SqliteAuditStore
from broker.audit.kafka_store import KafkaAuditStore
from broker.audit.kafka_verify import verify_kafka
from broker.audit.paths import audit_db_path, signing_key_path, signing_public_key_path
from broker.audit.store import AuditFilter
from broker.cli.main import app
from broker.demo import story
from broker.errors import LogUnavailableError
from broker.ingest.idempotency import SqliteIdempotencyIndex
from broker.ingest.kafka_idempotency import KafkaIdempotencyIndex
from broker.log.kafka import KafkaEventLog
from broker.log.port import AppendResult, LogRecord, NewRecord, TopicSpec
from broker.log.sqlite import SqliteEventLog
from broker.migrate import Migration
from broker.topics import ROUTER_GROUP

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture
def target(kafka_broker) -> Iterator[KafkaEventLog]:
    log = KafkaEventLog(kafka_broker.bootstrap_servers,
                        topic_prefix=f"m{uuid.uuid4().hex[:10]}.")
    yield log
    log.close()


def migrate(demo_data, target, *args: str):
    return runner.invoke(app, [
        "migrate", "--data", str(demo_data), "--kafka", target._connection.bootstrap_servers,
        "--topic-prefix", target._prefix, *args])


def read_all(log, topic: str, partition: int) -> list[LogRecord]:
    found: list[LogRecord] = []
    offset = 0
    while records := log.read(topic, partition, offset, 1000):
        found.extend(records)
        offset = records[-1].offset + 1
    return found


def assert_same_records(source: SqliteEventLog, target: KafkaEventLog) -> int:
    total = 0
    for topic in source.topics():
        assert target.partitions(topic) == source.partitions(topic)
        for partition in range(source.partitions(topic)):
            ours = [(r.offset, r.key, r.value, r.headers, r.timestamp_ms)
                    for r in read_all(source, topic, partition)]
            theirs = [(r.offset, r.key, r.value, r.headers, r.timestamp_ms)
                      for r in read_all(target, topic, partition)]
            assert theirs == ours, f"{topic}/{partition}"
            total += len(ours)
    return total


def test_a_migrated_directory_keeps_its_records_place_ids_and_audit_log(
        demo_data, target, tmp_path):
    result = migrate(demo_data, target)
    assert result.exit_code == 0, result.output
    assert "quarantine.events: 1 records copied" in result.output
    assert "audit log in Kafka verified" in result.output

    source = SqliteEventLog(demo_data / "log.db")
    try:
        copied = assert_same_records(source, target)
        assert f"migrated {copied} records" in result.output
        # The router continues where it stopped instead of routing everything again.
        ingress = [t for t in source.topics() if t.startswith("events.")]
        member = target.consumer(ROUTER_GROUP, ingress)
        try:
            for topic in ingress:
                for p in range(source.partitions(topic)):
                    assert member.committed((topic, p)) == source.load_group_offset(
                        ROUTER_GROUP, (topic, p))
        finally:
            member.close()
        # A publisher re-sending any demo event gets its original placement: the index on
        # Kafka points at the very record the embedded index pointed at. (Which partition
        # that is depends on the installation's pseudonym key, so no partition is named.)
        sent: dict[str, set[str]] = {}
        with sqlite3.connect(f"file:{demo_data / 'ingress.db'}?mode=ro", uri=True) as db:
            for agency, event_id in db.execute("SELECT source, event_id FROM accepted"):
                sent.setdefault(agency, set()).add(event_id)
        assert sum(map(len, sent.values())) == len([s for s in story.STORY if not s.refused])
        before = SqliteIdempotencyIndex(demo_data / "ingress.db")
        after = KafkaIdempotencyIndex(target, tmp_path / "accepted.db")
        try:
            for agency, event_ids in sent.items():
                was, now = before.lookup(agency, event_ids), after.lookup(agency, event_ids)
                assert set(now) == set(was) == event_ids, agency
                for event_id, place in now.items():
                    old = was[event_id]
                    (theirs,) = target.read(place.topic, place.partition, place.offset, 1)
                    (ours,) = source.read(old.topic, old.partition, old.offset, 1)
                    assert (theirs.offset, theirs.key, theirs.value) == \
                        (ours.offset, ours.key, ours.value), event_id
        finally:
            before.close()
            after.close()
    finally:
        source.close()
    index = KafkaIdempotencyIndex(target, tmp_path / "accepted.db")
    try:
        with SqliteAuditStore(audit_db_path(demo_data), create=False) as embedded:
            placed = {r.event_id: r for r in embedded.iter_records(AuditFilter(kind="decision"))}
            found = index.lookup("county-general", list(placed))
        assert found and all(a.topic.startswith("events.") for a in found.values())
    finally:
        index.close()

    verified = runner.invoke(app, [
        "audit", "verify", "--kafka", target._connection.bootstrap_servers, "--topic-prefix",
        target._prefix, "--public-key", str(signing_public_key_path(demo_data))])
    assert verified.exit_code == 0, verified.output
    assert " in 1 chain, " in verified.output

    # The accounting of disclosures reads the same from Kafka as from the directory.
    with SqliteAuditStore(audit_db_path(demo_data), create=False) as embedded:
        subjects = {r.subject for r in embedded.iter_records(
            AuditFilter(kind="decision", outcome="permit"))}
        expected = {s: [(d.event_id, d.decision_id, d.recipient) for d in
                        embedded.disclosures(AuditFilter(subject=s))] for s in subjects}
    kafka_store = KafkaAuditStore(target, tmp_path / "index.db", writer="router")
    try:
        assert {s: [(d.event_id, d.decision_id, d.recipient) for d in
                    kafka_store.disclosures(AuditFilter(subject=s))] for s in subjects} == expected
        # … and the broker carries on writing on Kafka, still verifiable.
        kafka_store.append([next(iter(embedded_entries(demo_data)))])
        signer = CheckpointSigner.load_or_create(signing_key_path(demo_data))
        signer.checkpoint(kafka_store)
    finally:
        kafka_store.close()
    report = verify_kafka(target, signer.public_key)
    assert report.ok, report.problem
    assert report.chains == 2


def embedded_entries(demo_data):
    from broker.audit import AuditEntry

    yield AuditEntry(kind="policy_loaded", at_ms=1, actor="broker", outcome="loaded",
                     detail={"bundle_version": "sha256:after-the-move"})


def test_running_it_again_after_it_finished_changes_nothing(demo_data, target):
    def ends() -> dict[tuple[str, int], int]:
        return {(t, p): target.end_offset(t, p)
                for t in target.topics() for p in range(target.partitions(t))}

    assert migrate(demo_data, target).exit_code == 0
    before = ends()
    again = migrate(demo_data, target)
    assert again.exit_code == 0, again.output
    assert "already migrated" in again.output
    assert ends() == before


class FailingOnce:
    """A target that stores half of the first append to `topic`, then fails, as a
    cluster that goes away in the middle of a copy would."""

    def __init__(self, inner: KafkaEventLog, topic: str) -> None:
        self._inner = inner
        self._topic = topic
        self.failed = False

    def append(self, topic: str, records: Sequence[NewRecord]) -> list[AppendResult]:
        if topic == self._topic and not self.failed:
            self.failed = True
            self._inner.append(topic, records[:max(1, len(records) // 2)])
            raise LogUnavailableError("Kafka went away (test)")
        return self._inner.append(topic, records)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@pytest.mark.parametrize("topic", ["deliver.hv-births", "_audit"])
def test_an_interrupted_migration_continues_where_it_stopped(demo_data, target, topic):
    failing = FailingOnce(target, topic)
    with pytest.raises(LogUnavailableError):
        Migration(demo_data, failing).run()  # type: ignore[arg-type]
    assert failing.failed
    resumed = migrate(demo_data, target)
    assert resumed.exit_code == 0, resumed.output
    assert "continuing an interrupted migration" in resumed.output
    source = SqliteEventLog(demo_data / "log.db")
    try:
        assert_same_records(source, target)
    finally:
        source.close()
    assert verify_kafka(target).ok


def test_a_target_in_use_is_refused_unless_forced(demo_data, target):
    target.ensure_topic(TopicSpec("events.birth", partitions=4))
    target.append("events.birth", [NewRecord(value=b"already here", key=b"k")])
    refused = migrate(demo_data, target)
    assert refused.exit_code == 2
    assert "already holds records in 1 topic(s) (events.birth)" in refused.output
    forced = migrate(demo_data, target, "--force")
    assert forced.exit_code == 0, forced.output
    assert verify_kafka(target).ok
