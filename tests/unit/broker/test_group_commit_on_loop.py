"""Group commit on the event loop, over a log that can append without waiting for
another writer: what a publisher awaiting its answer gets, when the log is free, when
another writer holds it for a while, and when it holds it for long."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from broker.api.future_bridge import FutureBridge
from broker.ingest.group_commit import LOOP_MAX_RECORDS, LOOP_TRIES, GroupCommitter, Placed
from broker.log.port import AppendResult, NewRecord
from tests.unit.broker.fakes import MemoryEventLog, MemoryIdempotencyIndex

BIRTHS, CONSENTS = "events.birth", "events.consent"


class TakingTurnsLog(MemoryEventLog):
    """A `MemoryEventLog` with `AppendingUnlessBusy`: `busy_for` tries answer None, as
    the embedded log does while another writer holds it. Notes which thread appended."""

    def __init__(self) -> None:
        super().__init__()
        self.busy_for = 0
        self.appended_on: list[int] = []

    def append(self, topic: str, records: Sequence[NewRecord]) -> list[AppendResult]:
        self.appended_on.append(threading.get_ident())
        return super().append(topic, records)

    def append_unless_busy(self, topic: str, records: Sequence[NewRecord]
                           ) -> list[AppendResult] | None:
        if self.busy_for > 0:
            self.busy_for -= 1
            return None
        return self.append(topic, records)


def record(key: str) -> list[NewRecord]:
    return [NewRecord(value=f"v-{key}".encode(), key=key.encode())]


async def publish(committer: GroupCommitter, event_id: str, topic: str = BIRTHS
                  ) -> Placed:
    bridge = FutureBridge(asyncio.get_running_loop())
    (placed,) = await bridge.wait(
        committer.submit("cgh", topic, [event_id], record(event_id), awaited=True))
    return placed


def test_an_awaited_publish_is_appended_and_answered_on_the_event_loop() -> None:
    log = TakingTurnsLog()
    committer = GroupCommitter(log, MemoryIdempotencyIndex())
    try:
        placed = asyncio.run(asyncio.wait_for(publish(committer, "e1"), 5))
    finally:
        committer.close()
    assert not placed.duplicate
    assert [r.value for r in log.records(BIRTHS)] == [b"v-e1"]
    assert log.appended_on == [threading.get_ident()]   # asyncio.run's loop: this thread


def test_a_resend_is_a_duplicate_whichever_way_each_was_committed() -> None:
    log = TakingTurnsLog()
    committer = GroupCommitter(log, MemoryIdempotencyIndex())

    async def main() -> list[Placed]:
        on_loop = await publish(committer, "e1")
        from_thread = committer.submit("cgh", BIRTHS, ["e1"], record("e1")).result(5)[0]
        first_by_thread = committer.submit("cgh", BIRTHS, ["e2"], record("e2")).result(5)[0]
        again_on_loop = await publish(committer, "e2")
        # Sent twice at once, both awaited on the loop: one batch, one append.
        twice = await asyncio.gather(publish(committer, "e3"), publish(committer, "e3"))
        return [on_loop, from_thread, first_by_thread, again_on_loop, *twice]

    try:
        on_loop, from_thread, first_by_thread, again_on_loop, one, other = asyncio.run(
            asyncio.wait_for(main(), 5))
    finally:
        committer.close()
    assert from_thread.duplicate and from_thread.offset == on_loop.offset
    assert again_on_loop.duplicate and again_on_loop.offset == first_by_thread.offset
    assert sorted([one.duplicate, other.duplicate]) == [False, True]
    assert sorted(r.value for r in log.records(BIRTHS)) == [b"v-e1", b"v-e2", b"v-e3"]


def test_while_another_writer_holds_the_log_the_loop_tries_again_and_answers() -> None:
    log = TakingTurnsLog()
    log.busy_for = LOOP_TRIES // 2
    committer = GroupCommitter(log, MemoryIdempotencyIndex())

    async def main() -> list[Placed]:
        first = asyncio.ensure_future(publish(committer, "e1"))
        await asyncio.sleep(0.002)   # the first is waiting for the log: the second joins it
        return await asyncio.gather(first, publish(committer, "e2"))

    try:
        answers = asyncio.run(asyncio.wait_for(main(), 5))
    finally:
        committer.close()
    assert [a.duplicate for a in answers] == [False, False]
    assert log.appended_on == [threading.get_ident()]   # once, both together, on the loop
    assert sorted(r.value for r in log.records(BIRTHS)) == [b"v-e1", b"v-e2"]


def test_a_log_held_for_long_is_waited_for_by_the_committer_thread() -> None:
    log = TakingTurnsLog()
    log.busy_for = 10 * LOOP_TRIES
    committer = GroupCommitter(log, MemoryIdempotencyIndex())
    try:
        placed = asyncio.run(asyncio.wait_for(publish(committer, "e1"), 5))
    finally:
        committer.close()
    assert not placed.duplicate
    assert len(log.appended_on) == 1 and log.appended_on[0] != threading.get_ident()
    assert [r.value for r in log.records(BIRTHS)] == [b"v-e1"]


def test_requests_to_two_topics_gathered_together_each_reach_their_topic() -> None:
    log = TakingTurnsLog()
    committer = GroupCommitter(log, MemoryIdempotencyIndex())

    async def main() -> list[Placed]:
        return await asyncio.gather(publish(committer, "b1"), publish(committer, "c1",
                                                                      CONSENTS))

    try:
        birth, consent = asyncio.run(asyncio.wait_for(main(), 5))
    finally:
        committer.close()
    assert (birth.topic, consent.topic) == (BIRTHS, CONSENTS)
    assert [r.value for r in log.records(BIRTHS)] == [b"v-b1"]
    assert [r.value for r in log.records(CONSENTS)] == [b"v-c1"]


def test_a_large_batch_is_committed_by_the_thread_not_on_the_loop() -> None:
    """A large batch's append would hold the loop, and every stream it serves: it goes
    to the committer thread, while a batch of the largest size the loop takes stays."""
    log = TakingTurnsLog()
    committer = GroupCommitter(log, MemoryIdempotencyIndex())

    async def main(size: int) -> list[Placed]:
        ids = [f"b{size}-{n}" for n in range(size)]
        records = [r for event_id in ids for r in record(event_id)]
        bridge = FutureBridge(asyncio.get_running_loop())
        return await bridge.wait(committer.submit("cgh", BIRTHS, ids, records, awaited=True))

    try:
        small = asyncio.run(asyncio.wait_for(main(LOOP_MAX_RECORDS), 5))
        large = asyncio.run(asyncio.wait_for(main(LOOP_MAX_RECORDS + 1), 5))
    finally:
        committer.close()
    assert len(small) == LOOP_MAX_RECORDS and len(large) == LOOP_MAX_RECORDS + 1
    assert not any(p.duplicate for p in [*small, *large])
    on_loop, by_thread = log.appended_on
    assert on_loop == threading.get_ident() and by_thread != threading.get_ident()


def test_a_publish_whose_caller_stops_waiting_is_still_committed_and_later_ones_answered(
        ) -> None:
    """A client that goes away while its publish waits for the log (its waiter cancelled,
    through the bridge or on the answer itself) does not undo the publish, nor stop the
    loop answering the next one (what the publisher does once the events are durable,
    the ingest count, still happens); its re-send is a duplicate."""
    log = TakingTurnsLog()
    told: list[list[str]] = []
    log.busy_for = LOOP_TRIES // 2
    committer = GroupCommitter(log, MemoryIdempotencyIndex())

    async def main() -> list[Placed]:
        bridged = asyncio.ensure_future(publish(committer, "e1"))
        direct = asyncio.ensure_future(asyncio.wait_for(
            committer.submit("cgh", BIRTHS, ["e2"], record("e2"), awaited=True,
                             on_placed=lambda placed: told.append(
                                 [p.event_id for p in placed])), 5))
        await asyncio.sleep(0.001)   # both wait for the log
        bridged.cancel()
        direct.cancel()
        await asyncio.gather(bridged, direct, return_exceptions=True)
        return [await publish(committer, "e3"), await publish(committer, "e1"),
                await publish(committer, "e2")]

    try:
        fresh, resent_bridged, resent_direct = asyncio.run(asyncio.wait_for(main(), 5))
    finally:
        committer.close()
    assert not fresh.duplicate and resent_bridged.duplicate and resent_direct.duplicate
    assert told == [["e2"]]
    assert sorted(r.value for r in log.records(BIRTHS)) == [b"v-e1", b"v-e2", b"v-e3"]
