"""A consumer group member of the embedded log looks only at topics something was
appended to since it last found them with nothing new (announced by this process's
appends, another process's doorbell ring, or the watcher's poll for writers that do not
ring): it must still see every append, whoever made it, whether or not it ever waits."""

from __future__ import annotations

import time
from pathlib import Path

from broker.log import LogRecord, NewRecord, SqliteEventLog, TopicSpec
from broker.log.port import Consumer

SLOW_POLL_S = 60.0
"""A safety-net poll so slow that only an announcement or a ring can wake a reader."""
TOPICS = ("events.birth", "events.referral", "events.consent")


def _member(log: SqliteEventLog) -> Consumer:
    for topic in TOPICS:
        log.ensure_topic(TopicSpec(topic, partitions=2))
    member = log.consumer("router", list(TOPICS))
    for _ in range(3):  # every topic looked at, found with nothing new
        assert member.poll(0.01) == []
    return member


def _poll_without_waiting(member: Consumer, seconds: float) -> list[LogRecord]:
    """Polls that hardly wait, as a busy router's: the next look skips quiet topics."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        records = member.poll(0.001)
        if records:
            return records
        time.sleep(0.01)
    return []


def test_an_append_through_the_same_log_is_read_at_once(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db", safety_poll_s=SLOW_POLL_S)
    try:
        member = _member(log)
        log.append("events.referral", [NewRecord(b"r1", key=b"k")])
        assert [r.value for r in member.poll(0.01)] == [b"r1"]
        assert member.poll(0.01) == []
    finally:
        log.close()


def test_an_append_by_another_process_is_read_when_its_ring_arrives(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = SqliteEventLog(path, safety_poll_s=SLOW_POLL_S)
    other = SqliteEventLog(path, safety_poll_s=SLOW_POLL_S)
    try:
        member = _member(log)
        started = time.monotonic()
        other.append("events.consent", [NewRecord(b"c1", key=b"k")])
        assert [r.value for r in member.poll(20)] == [b"c1"]
        assert time.monotonic() - started < SLOW_POLL_S / 2
        # And by a member that hardly waits (routing without pause).
        other.append("events.birth", [NewRecord(b"b1", key=b"k")])
        assert [r.value for r in _poll_without_waiting(member, 20)] == [b"b1"]
    finally:
        other.close()
        log.close()


def test_a_writer_that_does_not_ring_is_noticed_by_a_member_that_hardly_waits(
        tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = SqliteEventLog(path, safety_poll_s=0.05)
    silent = SqliteEventLog(path, doorbell=False)  # an older version, say: no rings
    try:
        member = _member(log)
        silent.append("events.birth", [NewRecord(b"b1", key=b"k")])
        assert [r.value for r in _poll_without_waiting(member, 20)] == [b"b1"]
    finally:
        silent.close()
        log.close()


def test_a_member_reads_on_past_a_full_batch_with_nothing_new_appended(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.db", safety_poll_s=SLOW_POLL_S)
    try:
        member = _member(log)
        log.append("events.birth", [NewRecord(f"b{n}".encode(), key=b"k") for n in range(10)])
        sizes = [len(member.poll(0.01, max_records=4)) for _ in range(4)]
        assert sizes == [4, 4, 2, 0]
    finally:
        log.close()
