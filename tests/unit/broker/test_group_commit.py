"""Group commit with an in-memory log and index: what a publisher that re-sends, races
itself or hits a failing log gets back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from broker.errors import LogError
from broker.ingest.group_commit import GroupCommitter
from broker.log.port import NewRecord
from tests.unit.broker.fakes import GatedEventLog, MemoryEventLog, MemoryIdempotencyIndex

TOPIC = "events.birth"


def records(*keys: str) -> list[NewRecord]:
    return [NewRecord(value=f"v-{k}".encode(), key=k.encode()) for k in keys]


@pytest.fixture
def log() -> MemoryEventLog:
    return MemoryEventLog()


@pytest.fixture
def committer(log: MemoryEventLog) -> Iterator[GroupCommitter]:
    c = GroupCommitter(log, MemoryIdempotencyIndex())
    yield c
    c.close()


def test_a_request_is_appended_and_placed(log, committer) -> None:
    placed = committer.submit("cgh", TOPIC, ["e1", "e2"], records("a", "b")).result(5)
    assert [(p.event_id, p.duplicate) for p in placed] == [("e1", False), ("e2", False)]
    stored = {(r.partition, r.offset): r.value for r in log.records(TOPIC)}
    assert {stored[(p.partition, p.offset)] for p in placed} == {b"v-a", b"v-b"}


def test_a_resent_event_gets_the_original_answer_and_is_not_appended_again(
        log, committer) -> None:
    (first,) = committer.submit("cgh", TOPIC, ["e1"], records("a")).result(5)
    (again,) = committer.submit("cgh", TOPIC, ["e1"], records("a")).result(5)
    assert again.duplicate and (again.partition, again.offset) == (
        first.partition, first.offset)
    assert len(log.records(TOPIC)) == 1


def test_the_same_event_id_from_two_agencies_is_two_events(log, committer) -> None:
    (one,) = committer.submit("cgh", TOPIC, ["e1"], records("a")).result(5)
    (two,) = committer.submit("dcf", TOPIC, ["e1"], records("a")).result(5)
    assert not one.duplicate and not two.duplicate
    assert len(log.records(TOPIC)) == 2


def test_requests_queued_together_share_one_append_and_a_racing_resend_is_a_duplicate(
) -> None:
    log = GatedEventLog()
    committer = GroupCommitter(log, MemoryIdempotencyIndex())
    try:
        blocked = committer.submit("cgh", TOPIC, ["e0"], records("z"))
        assert log.waiting.wait(5)
        # Queued behind the slow append: one batch, in which a re-send races its original.
        original = committer.submit("cgh", TOPIC, ["e1", "e2"], records("a", "b"))
        resend = committer.submit("cgh", TOPIC, ["e2"], records("b"))
        log.gate.set()
        blocked.result(5)
        placed, (raced,) = original.result(5), resend.result(5)
    finally:
        committer.close()
    assert [p.duplicate for p in placed] == [False, False]
    assert raced.duplicate and (raced.partition, raced.offset) == (
        placed[1].partition, placed[1].offset)
    # The first request alone, then the two queued ones in one append.
    assert log.journal.kinds("append") == [TOPIC, TOPIC]
    assert len(log.records(TOPIC)) == 3


def test_a_failing_log_fails_the_batch_and_the_committer_carries_on(log, committer) -> None:
    log.fail_appends_to = TOPIC
    with pytest.raises(LogError):
        committer.submit("cgh", TOPIC, ["e1"], records("a")).result(5)
    log.fail_appends_to = None
    (placed,) = committer.submit("cgh", TOPIC, ["e1"], records("a")).result(5)
    assert not placed.duplicate, "a failed append is not remembered as accepted"


def test_a_busy_committer_lingers_to_gather_requests_arriving_one_after_another(
        log) -> None:
    committer = GroupCommitter(log, MemoryIdempotencyIndex(), linger_s=0.5)
    try:
        # Idle: the first request is committed at once, not after the linger.
        started = time.monotonic()
        committer.submit("cgh", TOPIC, ["e0"], records("z")).result(5)
        assert time.monotonic() - started < 0.4
        # Busy (just committed): requests a few milliseconds apart share one append.
        futures = []
        for n in range(1, 5):
            futures.append(committer.submit("cgh", TOPIC, [f"e{n}"], records(str(n))))
            time.sleep(0.005)
        placed = [f.result(5) for f in futures]
    finally:
        committer.close()
    assert all(not p.duplicate for (p,) in placed)
    # The idle request alone, then the four together (or, should the test thread be held
    # up past the busy window, the first of them alone and the other three together);
    # without lingering, five appends.
    assert log.journal.kinds("append") in ([TOPIC] * 2, [TOPIC] * 3)
