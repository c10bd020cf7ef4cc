"""Write-ahead-log checkpoints off the writer's path: what a process appends is folded
back into the database file by a thread of its own, soon, though the writer's own
checkpoint would wait for thousands of pages; closing stops the thread."""

from __future__ import annotations

import threading
from pathlib import Path

from broker.log import NewRecord, SqliteEventLog, TopicSpec
from tests.waiting import eventually


def _checkpoint_threads() -> int:
    return sum(t.name == "handoff-wal-checkpoint" for t in threading.enumerate())


def test_appends_are_folded_into_the_database_file_soon(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = SqliteEventLog(path)
    try:
        log.ensure_topic(TopicSpec("deliver.hv", partitions=2))
        before = path.stat().st_size
        for batch in range(20):  # ~2 MB: some 500 pages, far below the writer's 4,000
            log.append("deliver.hv", [NewRecord(b"v" * 1000, key=f"{batch}-{n}".encode())
                                      for n in range(100)])
        eventually(lambda: path.stat().st_size > before + 1_500_000, timeout=10,
                   message="the appended pages never reached the database file")
        assert sum(log.end_offsets("deliver.hv")) == 2000
    finally:
        log.close()


def test_closing_the_log_stops_its_checkpoint_thread(tmp_path: Path) -> None:
    running = _checkpoint_threads()
    log = SqliteEventLog(tmp_path / "log.db")
    assert _checkpoint_threads() == running + 1
    log.close()
    assert _checkpoint_threads() == running
