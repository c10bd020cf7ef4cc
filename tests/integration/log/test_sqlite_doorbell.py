"""The embedded log's doorbell: an append by another process wakes a waiter at once,
names the topic, and nothing about the doorbell can fail an append."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from broker.log import NewRecord, SqliteEventLog, TopicSpec
from tests.waiting import Background, eventually

SLOW_POLL_S = 60.0
"""A safety-net poll so slow that only a ring can wake a waiter within a test."""


def bell_folder(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + "-bell")


def open_log(path: Path, **options: object) -> SqliteEventLog:
    return SqliteEventLog(path, safety_poll_s=SLOW_POLL_S, cross_process_poll_s=SLOW_POLL_S,
                          **options)  # type: ignore[arg-type]


@contextmanager
def two_processes(path: Path) -> Iterator[tuple[SqliteEventLog, SqliteEventLog]]:
    """Two log objects on one file, each with its own connections and doorbell, as two
    processes would have; both closed at the end."""
    log, other = open_log(path), open_log(path)
    try:
        yield log, other
    finally:
        other.close()
        log.close()


def waiting(log: SqliteEventLog, topic: str, timeout: float = 30) -> Background[bool]:
    waiter = Background(lambda: log.wait({(topic, 0): 0}, timeout=timeout))
    eventually(lambda: waiter.blocked_in(SqliteEventLog.wait),
               message="wait() did not block on an empty partition")
    return waiter


@pytest.mark.parametrize("depth", [0, 120], ids=["short-path", "path-over-107-bytes"])
def test_an_append_by_another_process_rings_the_waiter_awake(tmp_path: Path, depth: int):
    # A second log object on the same file has its own connections and its own
    # doorbell, exactly as another process would. With the safety poll a minute
    # away, only the ring can wake the waiter in time.
    folder = tmp_path / ("d" * depth) if depth else tmp_path
    path = folder / "log.db"
    with two_processes(path) as (log, other):
        log.ensure_topic(TopicSpec("deliver.hv"))
        waiter = waiting(log, "deliver.hv")
        started = time.monotonic()
        other.append("deliver.hv", [NewRecord(b"x")])
        assert waiter.result(timeout=20) is True
        assert time.monotonic() - started < SLOW_POLL_S / 2


def test_without_the_doorbell_only_the_poll_notices(tmp_path: Path):
    path = tmp_path / "log.db"
    log = SqliteEventLog(path, doorbell=False, cross_process_poll_s=0.05)
    other = SqliteEventLog(path, doorbell=False)
    try:
        log.ensure_topic(TopicSpec("deliver.hv"))
        waiter = waiting(log, "deliver.hv")
        other.append("deliver.hv", [NewRecord(b"x")])
        assert waiter.result(timeout=20) is True
        assert not bell_folder(path).exists()
    finally:
        other.close()
        log.close()


def test_a_waiter_sleeps_through_appends_to_other_topics(tmp_path: Path):
    path = tmp_path / "log.db"
    with two_processes(path) as (log, other):
        log.ensure_topic(TopicSpec("deliver.hv"))
        log.ensure_topic(TopicSpec("events.birth"))
        waiter = Background(lambda: log.wait({("deliver.hv", 0): 0}, timeout=1.0))
        eventually(lambda: waiter.blocked_in(SqliteEventLog.wait))
        other.append("events.birth", [NewRecord(b"x")])
        log.append("events.birth", [NewRecord(b"y")])
        assert waiter.result(timeout=20) is False


def test_a_socket_left_by_a_killed_process_is_removed_and_the_append_goes_through(
        tmp_path: Path):
    path = tmp_path / "log.db"
    log = open_log(path)
    log.ensure_topic(TopicSpec("deliver.hv"))
    folder = bell_folder(path)
    folder.mkdir(exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(folder / "dead-process"))
    stale.close()  # as after kill -9: the file stays, nobody listens
    try:
        assert log.append("deliver.hv", [NewRecord(b"x")])[0].offset == 0
        assert "dead-process" not in os.listdir(folder)
    finally:
        log.close()


def test_a_burst_of_appends_rings_the_other_process_without_failing_any(tmp_path: Path):
    path = tmp_path / "log.db"
    with two_processes(path) as (log, other):
        log.ensure_topic(TopicSpec("deliver.hv"))
        waiting(log, "deliver.hv", timeout=0.2).result(timeout=20)  # listening, then idle
        # Rings faster than the other side may take them: some may be dropped, none fail.
        for _ in range(3000):
            other.append("deliver.hv", [NewRecord(b"x")])
        assert other.end_offset("deliver.hv", 0) == 3000
        assert log.wait({("deliver.hv", 0): 0}, timeout=1) is True


def test_closing_removes_the_socket(tmp_path: Path):
    path = tmp_path / "log.db"
    log = open_log(path)
    log.ensure_topic(TopicSpec("deliver.hv"))
    log.wait({("deliver.hv", 0): 0}, timeout=0.01)
    assert os.listdir(bell_folder(path))
    log.close()
    assert os.listdir(bell_folder(path)) == []
