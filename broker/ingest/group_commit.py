"""Group commit for publishing: concurrent requests share one duplicate check and one log
append per topic; the idempotency index is written for many of them at once.

Under load this turns hundreds of small transactions a second into a few large ones;
when idle, a request is committed alone, as soon as it arrives. Under load (a request
arriving within `BUSY_WINDOW_S` of the previous commit) the committer lingers up to
`linger_s` after the first request of a batch to gather the others on their way: with
one event per request, without lingering most commits held a single request. The single committer
thread is also what makes the duplicate check and the append atomic with respect to
each other, without a lock held across requests.

An index that recovers from the log (the embedded one) holds what it is told to remember
in memory, where the duplicate check sees it; the committer has it written once the
oldest of it is `FLUSH_AFTER_S` old, after answering a batch or while waiting for the
next, and when it closes: one transaction for many batches, none on a request's way to
its answer. What dies unwritten with the process is read back from the log.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field

from broker.errors import LogError, StorageFullError, storage_full
from broker.ingest.idempotency import Accepted, AcceptedRow, IdempotencyIndex
from broker.log.port import EventLog, NewRecord

log = logging.getLogger("handoff.ingest")

LINGER_S = 0.002
"""How long a busy committer waits for more requests before it commits a batch."""
BUSY_WINDOW_S = 0.02
"""A request arriving this soon after the previous commit ended finds the committer busy."""
FLUSH_AFTER_S = 0.1
"""How long the idempotency index may hold what it remembered before it is written."""


@dataclass(frozen=True, slots=True)
class Placed:
    """Where one event of a request ended up."""

    event_id: str
    topic: str
    partition: int
    offset: int
    duplicate: bool

    def to_dict(self) -> dict[str, object]:
        return {"event_id": self.event_id, "topic": self.topic, "partition": self.partition,
                "offset": self.offset, "duplicate": self.duplicate}


@dataclass
class _Request:
    agency: str
    topic: str
    event_ids: list[str]
    records: list[NewRecord]
    future: Future[list[Placed]] = field(default_factory=Future)


class GroupCommitter:
    def __init__(self, event_log: EventLog, idempotency: IdempotencyIndex,
                 max_records: int = 5000, linger_s: float = LINGER_S) -> None:
        self._log = event_log
        self._linger_s = linger_s
        self._idempotency = idempotency
        self._max_records = max_records
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="handoff-ingest", daemon=True)
        self._thread.start()

    def submit(self, agency: str, topic: str, event_ids: list[str], records: list[NewRecord]
               ) -> Future[list[Placed]]:
        """Queue a request's events; the future resolves once they are durable."""
        request = _Request(agency, topic, event_ids, records)
        self._queue.put(request)
        return request.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        committed_at = float("-inf")
        while True:
            first = self._next_request()
            if first is None:
                self._flush_index()
                return
            batch = [first]
            size = len(first.records)
            now = time.monotonic()
            linger_until = now + self._linger_s if (
                now - committed_at < BUSY_WINDOW_S) else now
            while size < self._max_records:
                try:
                    wait = linger_until - time.monotonic()
                    more = (self._queue.get(timeout=wait) if wait > 0
                            else self._queue.get_nowait())
                except queue.Empty:
                    break
                if more is None:
                    self._commit(batch)
                    self._flush_index()
                    return
                batch.append(more)
                size += len(more.records)
            self._commit(batch)
            committed_at = time.monotonic()
            held_since = self._idempotency.pending_since()
            if held_since is not None and committed_at - held_since >= FLUSH_AFTER_S:
                self._flush_index()

    def _next_request(self) -> _Request | None:
        """The next request; the index is flushed if it is due while waiting for one."""
        held_since = self._idempotency.pending_since()
        if held_since is not None:
            try:
                return self._queue.get(
                    timeout=max(0.0, held_since + FLUSH_AFTER_S - time.monotonic()))
            except queue.Empty:
                self._flush_index()
        return self._queue.get()

    def _flush_index(self) -> None:
        # The events are in the log: after a failed write, the next batch's catch-up
        # reads back what the index held.
        try:
            self._idempotency.flush()
        except LogError as exc:
            log.warning("writing the idempotency index failed (%s); the next publish "
                        "reads what it held back from the log", type(exc).__name__)
        except Exception:  # the committer must outlive a failed write of the index
            log.exception("writing the idempotency index failed")

    def _commit(self, batch: list[_Request]) -> None:
        try:
            results = self._place(batch)
        except LogError as exc:
            for request in batch:
                request.future.set_exception(exc)
            return
        except Exception as exc:  # the committer must outlive any one failed batch
            log.exception("publishing a batch failed")
            failure = (StorageFullError("a disk the broker writes to is full") if
                       storage_full(exc) else LogError(f"publish failed: {type(exc).__name__}"))
            failure.__cause__ = exc
            for request in batch:
                request.future.set_exception(failure)
            return
        for request, placed in zip(batch, results, strict=True):
            request.future.set_result(placed)

    def _place(self, batch: list[_Request]) -> list[list[Placed]]:
        if self._idempotency.recovers_from_log:
            # What was appended but never remembered (a full disk, a crash, another
            # process) is read back first, so its re-send is found below.
            self._idempotency.catch_up({request.topic for request in batch})
        by_agency: dict[str, list[str]] = defaultdict(list)
        for request in batch:
            by_agency[request.agency].extend(request.event_ids)
        known: dict[str, dict[str, Accepted]] = {
            agency: self._idempotency.lookup(agency, ids) for agency, ids in by_agency.items()
        }
        # Decide which events are new: not accepted before, and the first of their id in
        # this batch (a re-send can race its original into the same batch).
        fresh: dict[str, list[tuple[int, int]]] = defaultdict(list)   # topic -> (req, idx)
        claimed: set[tuple[str, str]] = set()
        for r, request in enumerate(batch):
            seen = known[request.agency]
            for i, event_id in enumerate(request.event_ids):
                claim = (request.agency, event_id)
                if event_id not in seen and claim not in claimed:
                    claimed.add(claim)
                    fresh[request.topic].append((r, i))
        placed_at: dict[tuple[int, int], Accepted] = {}
        for topic, slots in fresh.items():
            appended = self._log.append(topic, [batch[r].records[i] for r, i in slots])
            for slot, result in zip(slots, appended, strict=True):
                placed_at[slot] = Accepted(topic, result.partition, result.offset)
        for (r, i), where in placed_at.items():
            known[batch[r].agency][batch[r].event_ids[i]] = where
        self._remember([(batch[r].agency, batch[r].event_ids[i], where)
                        for (r, i), where in placed_at.items()])
        results: list[list[Placed]] = []
        for r, request in enumerate(batch):
            out = []
            for i, event_id in enumerate(request.event_ids):
                where = known[request.agency][event_id]
                out.append(Placed(event_id, where.topic, where.partition, where.offset,
                                  duplicate=(r, i) not in placed_at))
            results.append(out)
        return results

    def _remember(self, rows: list[AcceptedRow]) -> None:
        """Record where the batch's new events went. The events are in the log already:
        when the index reads them back from there, a failure here loses nothing and the
        batch is still accepted (the next batch's catch-up records them)."""
        try:
            self._idempotency.remember_all(rows)
        except LogError as exc:
            if not self._idempotency.recovers_from_log:
                raise
            log.warning("%d accepted event(s) are in the log but not yet in the "
                        "idempotency index (%s); the next publish reads them back",
                        len(rows), type(exc).__name__)
