"""What the embedded log does beyond the port: compaction, retention, durability modes,
sharing a file with another process, and how it reports trouble with its database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import broker.log.sqlite as sqlite_module
from broker.errors import ConfigError, LogError, LogUnavailableError
from broker.log import NewRecord, SqliteEventLog, TopicSpec
from tests.waiting import Background, eventually


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "log.db"


@pytest.fixture
def log(log_path: Path):
    event_log = SqliteEventLog(log_path)
    yield event_log
    event_log.close()


def offsets_and_values(log: SqliteEventLog, topic: str) -> list[tuple[int, bytes]]:
    return [(r.offset, r.value) for r in log.read(topic, 0, 0, 1000)]


def test_compaction_keeps_the_latest_record_per_key_at_its_offset(log):
    log.ensure_topic(TopicSpec("consents", compacted=True))
    log.append(
        "consents",
        [
            NewRecord(b"a1", key=b"a"),
            NewRecord(b"b1", key=b"b"),
            NewRecord(b"a2", key=b"a"),
            NewRecord(b"unkeyed"),
            NewRecord(b"a3", key=b"a"),
        ],
    )

    assert log.compact("consents") == 2

    assert offsets_and_values(log, "consents") == [(1, b"b1"), (3, b"unkeyed"), (4, b"a3")]
    assert [r.offset for r in log.read("consents", 0, 2)] == [3, 4]
    assert log.compact("consents") == 0


def test_only_compacted_topics_compact(log):
    log.ensure_topic(TopicSpec("events.birth"))
    with pytest.raises(LogError):
        log.compact("events.birth")


def test_retention_deletes_old_records_and_never_reuses_their_offsets(log):
    log.ensure_topic(TopicSpec("deliver.hv", retention_ms=1_000))
    log.ensure_topic(TopicSpec("audit"))
    log.append(
        "deliver.hv", [NewRecord(b"old", timestamp_ms=1_000), NewRecord(b"new", timestamp_ms=5_000)]
    )
    log.append("audit", [NewRecord(b"kept forever", timestamp_ms=1)])

    assert log.enforce_retention(now_ms=5_500) == 1
    assert offsets_and_values(log, "deliver.hv") == [(1, b"new")]
    assert log.read("deliver.hv", 0, 0)[0].offset == 1

    assert log.enforce_retention(now_ms=100_000) == 1
    assert log.read("deliver.hv", 0, 0) == []
    assert log.end_offset("deliver.hv", 0) == 2
    assert log.append("deliver.hv", [NewRecord(b"later")])[0].offset == 2
    assert offsets_and_values(log, "audit") == [(0, b"kept forever")]


def test_ensure_topic_applies_a_changed_retention(log):
    log.ensure_topic(TopicSpec("deliver.hv", retention_ms=1_000))
    log.ensure_topic(TopicSpec("deliver.hv", retention_ms=None))
    log.append("deliver.hv", [NewRecord(b"old", timestamp_ms=1)])

    assert log.enforce_retention(now_ms=10**12) == 0


def test_appends_by_another_process_wake_a_waiter(log, log_path):
    # A second log object on the same file has its own connections, exactly as another
    # process would; only the fallback poll can notice its commits.
    log.ensure_topic(TopicSpec("events.birth"))
    other = SqliteEventLog(log_path)
    try:
        waiter = Background(lambda: log.wait({("events.birth", 0): 0}, timeout=10))
        eventually(lambda: waiter.blocked_in(SqliteEventLog.wait),
                   message="wait() did not block on an empty partition")
        other.append("events.birth", [NewRecord(b"x")])
        assert waiter.result(timeout=10) is True
    finally:
        other.close()
    assert [r.value for r in log.read("events.birth", 0, 0)] == [b"x"]


def test_topics_created_by_another_process_are_found(log, log_path):
    other = SqliteEventLog(log_path)
    other.ensure_topic(TopicSpec("events.referral", partitions=2))
    other.close()

    assert log.partitions("events.referral") == 2


def test_full_sync_mode_appends_and_reads(log_path):
    log = SqliteEventLog(log_path, sync="full")
    log.ensure_topic(TopicSpec("events.birth"))
    log.append("events.birth", [NewRecord(b"x")])
    assert [r.value for r in log.read("events.birth", 0, 0)] == [b"x"]
    log.close()


def test_an_unknown_sync_mode_is_a_configuration_error(log_path):
    with pytest.raises(ConfigError):
        SqliteEventLog(log_path, sync="sometimes")  # type: ignore[arg-type]


def test_a_database_held_by_another_writer_is_reported_as_retriable(log_path, monkeypatch):
    monkeypatch.setattr(sqlite_module, "_BUSY_TIMEOUT_S", 0.05)
    log = SqliteEventLog(log_path)
    log.ensure_topic(TopicSpec("events.birth"))
    blocker = sqlite3.connect(log_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(LogUnavailableError, match="retry") as caught:
            log.append("events.birth", [NewRecord(b"personal data")])
        assert "personal data" not in str(caught.value)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert log.append("events.birth", [NewRecord(b"x")])[0].offset == 0
    log.close()


def test_a_database_from_a_newer_version_is_refused(log_path):
    SqliteEventLog(log_path).close()
    with sqlite3.connect(log_path) as db:
        db.execute("PRAGMA user_version = 99")

    with pytest.raises(LogError, match="newer"):
        SqliteEventLog(log_path)


def test_closing_wakes_a_waiter_with_an_error(log):
    log.ensure_topic(TopicSpec("events.birth"))
    waiter = Background(lambda: log.wait({("events.birth", 0): 0}, timeout=10))
    eventually(lambda: waiter.blocked_in(SqliteEventLog.wait),
               message="wait() did not block on an empty partition")

    log.close()

    with pytest.raises(LogError):
        waiter.result(timeout=10)
