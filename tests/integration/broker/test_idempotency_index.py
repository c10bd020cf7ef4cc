"""The embedded idempotency index holds what group commit tells it in memory and writes it
later, many commits at once: a re-sent event is recognised all the same, before the
write, after it, after a process died holding it, and after the write failed."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.errors import StorageFullError
from broker.ingest.group_commit import FLUSH_AFTER_S, GroupCommitter, Placed
from broker.ingest.idempotency import Accepted, SqliteIdempotencyIndex
from broker.log.port import NewRecord, TopicSpec
from broker.log.sqlite import SqliteEventLog
from broker.topics import H_INGEST_EVENT_ID, H_INGEST_SOURCE

TOPIC = "events.birth"
AGENCY = "county-general"


def record(event_id: str) -> NewRecord:
    return NewRecord(value=b"v", key=b"subject",
                     headers=((H_INGEST_SOURCE, AGENCY.encode()),
                              (H_INGEST_EVENT_ID, event_id.encode())))


@pytest.fixture
def event_log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    log = SqliteEventLog(tmp_path / "log.db")
    log.ensure_topic(TopicSpec(TOPIC, partitions=2))
    yield log
    log.close()


def publish(committer: GroupCommitter, event_id: str) -> Placed:
    (placed,) = committer.submit(AGENCY, TOPIC, [event_id], [record(event_id)]).result(10)
    return placed


def in_file(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT event_id FROM accepted")}


def test_a_resent_event_is_recognised_before_and_after_the_index_is_written(
        tmp_path, event_log) -> None:
    index = SqliteIdempotencyIndex(tmp_path / "ingress.db", event_log)
    committer = GroupCommitter(event_log, index)
    try:
        first = publish(committer, "ev-1")
        assert "ev-1" not in in_file(tmp_path / "ingress.db"), "held, not yet written"
        again = publish(committer, "ev-1")
        assert again.duplicate and again.offset == first.offset
        # Written once the oldest held is due, with the committer idle.
        deadline = time.monotonic() + FLUSH_AFTER_S + 5
        while "ev-1" not in in_file(tmp_path / "ingress.db"):
            assert time.monotonic() < deadline, "the index was never written"
            time.sleep(0.02)
        assert publish(committer, "ev-1").duplicate
        assert not publish(committer, "ev-2").duplicate
    finally:
        committer.close()
        index.close()
    assert {"ev-1", "ev-2"} <= in_file(tmp_path / "ingress.db"), "written on close"


def test_a_process_that_died_holding_accepted_events_loses_none_of_them(
        tmp_path, event_log) -> None:
    # What its committer did, then it was killed before the index was written.
    dead = SqliteIdempotencyIndex(tmp_path / "ingress.db", event_log)
    dead.catch_up([TOPIC])
    (first,) = event_log.append(TOPIC, [record("ev-1")])
    dead.remember_all([(AGENCY, "ev-1", Accepted(TOPIC, first.partition, first.offset))])
    assert dead.lookup(AGENCY, ["ev-1"]) == {"ev-1": Accepted(TOPIC, first.partition,
                                                               first.offset)}
    assert "ev-1" not in in_file(tmp_path / "ingress.db")
    index = SqliteIdempotencyIndex(tmp_path / "ingress.db", event_log)
    restarted = GroupCommitter(event_log, index)
    try:
        again = publish(restarted, "ev-1")
        assert again.duplicate and (again.partition, again.offset) == (
            first.partition, first.offset)
    finally:
        restarted.close()
        index.close()
    assert len(event_log.read(TOPIC, first.partition, 0, 10)) == 1, "appended once"


def test_a_failed_write_of_the_index_is_read_back_from_the_log(
        tmp_path, event_log, monkeypatch) -> None:
    index = SqliteIdempotencyIndex(tmp_path / "ingress.db", event_log)
    committer = GroupCommitter(event_log, index)
    try:
        index.catch_up([TOPIC])   # the progress rows exist: the next write is the flush
        first = publish(committer, "ev-1")
        real = index._db
        index._db = FullDisk(real)   # type: ignore[assignment]
        with pytest.raises(StorageFullError):
            index.flush()
        index._db = real
        assert index.pending_since() is None, "a failed write drops what was held"
        again = publish(committer, "ev-1")
        assert again.duplicate and again.offset == first.offset
    finally:
        committer.close()
        index.close()
    assert "ev-1" in in_file(tmp_path / "ingress.db")


class FullDisk:
    """A connection whose writes fail as SQLite's do on a full disk."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql.startswith("BEGIN"):
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = 13  # type: ignore[attr-defined]
            raise error
        return self.db.execute(sql, *args)


def test_publishes_committed_on_the_event_loop_are_recognised_and_written(
        tmp_path, event_log) -> None:
    """Awaited on a loop, as the publish routes do: committed there (also while another
    process holds the log's write lock for a moment), a re-send is a duplicate whichever
    way it comes, and the committer thread still writes the index once it is due."""
    index = SqliteIdempotencyIndex(tmp_path / "ingress.db", event_log)
    committer = GroupCommitter(event_log, index)
    holder = sqlite3.connect(tmp_path / "log.db", isolation_level=None,
                             check_same_thread=False)

    async def on_loop(event_id: str) -> Placed:
        (placed,) = await asyncio.wrap_future(committer.submit(
            AGENCY, TOPIC, [event_id], [record(event_id)], awaited=True))
        return placed

    async def main() -> list[Placed]:
        first = await on_loop("ev-1")
        holder.execute("BEGIN IMMEDIATE")   # the router process, mid-commit
        asyncio.get_running_loop().call_later(0.003, holder.execute, "COMMIT")
        while_held = await on_loop("ev-2")
        return [first, while_held, await on_loop("ev-1")]

    try:
        first, while_held, again = asyncio.run(asyncio.wait_for(main(), 10))
        assert not first.duplicate and not while_held.duplicate
        assert again.duplicate and again.offset == first.offset
        deadline = time.monotonic() + FLUSH_AFTER_S + 5
        while in_file(tmp_path / "ingress.db") != {"ev-1", "ev-2"}:
            assert time.monotonic() < deadline, "the index was never written"
            time.sleep(0.02)
        assert publish(committer, "ev-2").duplicate   # from a thread, as a connector
    finally:
        committer.close()
        index.close()
        holder.close()
    assert sum(event_log.end_offsets(TOPIC)) == 2
