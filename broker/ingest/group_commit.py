"""Group commit for publishing: concurrent requests share one duplicate check and one log
append per topic; the idempotency index is written for many of them at once.

Under load this turns hundreds of small transactions a second into a few large ones;
when idle, a request is committed alone, as soon as it arrives. Under load (a request
arriving within `BUSY_WINDOW_S` of the previous commit) the committer lingers up to
`linger_s` after the first request of a batch to gather the others on their way: with
one event per request, without lingering most commits held a single request. One committer at a
time (a lock, held only while committing) makes the duplicate check and the append
atomic with respect to each other.

Over a log that can append without waiting for another writer (the embedded log's
`AppendingUnlessBusy`), a request awaited on an event loop (the publish routes) is
committed on that loop: gathered with `call_soon` (or, under load, the loop's timer for
the same linger), appended when the log's write lock is free, and answered there, with
no hand-off to a thread and back: such a request's answer is an `asyncio.Future` of that
loop (no lock, no condition, no thread-safe wake-up), resolved by the thread with
`call_soon_threadsafe` only if the request ends up there. While another writer holds the
log (the router process commits a step, the committer thread writes) the loop tries again
every `LOOP_RETRY_S` with what arrived meanwhile, and after `LOOP_TRIES` hands the batch
to the committer thread, which waits its turn. Kafka, whose appends wait for the cluster,
callers outside a loop (connectors, the router's alerts) and requests of more than
`LOOP_MAX_RECORDS` events (whose append would hold the loop, and every stream it
serves, for milliseconds) keep the thread.

An index that recovers from the log (the embedded one) holds what it is told to remember
in memory, where the duplicate check sees it; the committer has it written once the
oldest of it is `FLUSH_AFTER_S` old, after answering a batch or while waiting for the
next, and when it closes: one transaction for many batches, none on a request's way to
its answer. What dies unwritten with the process is read back from the log.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict

from broker.errors import LogError, StorageFullError, storage_full
from broker.ingest.commit_request import Answer, OnPlaced, Placed, Request
from broker.ingest.idempotency import Accepted, AcceptedRow, IdempotencyIndex
from broker.log.port import AppendingUnlessBusy, EventLog, NewRecord

log = logging.getLogger("handoff.ingest")

LINGER_S = 0.002
"""How long a busy committer waits for more requests before it commits a batch."""
BUSY_WINDOW_S = 0.02
"""A request arriving this soon after the previous commit ended finds the committer busy."""
LOOP_RETRY_S = 0.0005
"""How soon a commit on the event loop that found the log busy tries again."""
LOOP_TRIES = 20
"""Tries on the event loop before a batch is handed to the committer thread to wait."""
LOOP_MAX_RECORDS = 100
"""Requests of more events than this are committed by the thread, never on the loop."""
FLUSH_AFTER_S = 0.1
"""How long the idempotency index may hold what it remembered before it is written.
(Longer costs less CPU per row, since the rows are keyed by random event ids and a write
dirties about one page per row until it holds as many rows as the table has pages, but
the write holds the commit lock: publishes wait for it.)"""


class _WriterBusy(Exception):
    """Another writer holds the log (a commit on the loop then tries again later)."""


_WAKE = Request("", "", [], [])
"""Queued for the committer thread when the index started holding rows committed on an
event loop: the thread then writes them once they are due."""


class GroupCommitter:
    def __init__(self, event_log: EventLog, idempotency: IdempotencyIndex,
                 max_records: int = 5000, linger_s: float = LINGER_S) -> None:
        self._log = event_log
        self._append_now = (event_log.append_unless_busy
                            if isinstance(event_log, AppendingUnlessBusy) else None)
        self._linger_s = linger_s
        self._idempotency = idempotency
        self._max_records = max_records
        self._commit_lock = threading.Lock()
        """Held by whoever commits (the thread, or a loop): one at a time keeps the
        duplicate check atomic with the append."""
        self._gather_lock = threading.Lock()
        self._gathered: list[Request] = []
        self._gathering_on: asyncio.AbstractEventLoop | None = None
        self._loop_committed_at = float("-inf")
        self._closed = False
        self._queue: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="handoff-ingest", daemon=True)
        self._thread.start()

    def submit(self, agency: str, topic: str, event_ids: list[str], records: list[NewRecord],
               *, awaited: bool = False,
               on_placed: OnPlaced | None = None) -> Answer:
        """Queue a request's events; the answer resolves once they are durable, after
        `on_placed` (if given) is called with where they went (also when the caller has
        stopped waiting: a cancelled answer).
        `awaited`: the caller awaits the answer on the running event loop (never blocks
        the loop on it); over a log that can append without waiting, the commit then
        runs on that loop (unless the request is larger than `LOOP_MAX_RECORDS`), and the
        answer is an `asyncio.Future` of that loop."""
        if awaited and self._append_now is not None and len(records) <= LOOP_MAX_RECORDS:
            gathered = self._gather(agency, topic, event_ids, records, on_placed)
            if gathered is not None:
                return gathered.future
        request = Request(agency, topic, event_ids, records, on_placed=on_placed)
        self._queue.put(request)
        return request.future

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _to_thread(self, requests: list[Request]) -> None:
        if not self._thread.is_alive():
            for request in requests:
                request.settle(None, LogError("publishing has stopped"))
            return
        for request in requests:
            self._queue.put(request)

    # -- on the event loop ----------------------------------------------------------------

    def _gather(self, agency: str, topic: str, event_ids: list[str],
                records: list[NewRecord], on_placed: OnPlaced | None
                ) -> Request | None:
        """Add a request to the batch the running loop commits next (None: no running
        loop, or another loop is gathering; the thread takes it)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        request = Request(agency, topic, event_ids, records, loop.create_future(), loop,
                           threading.get_ident(), on_placed)
        with self._gather_lock:
            if self._gathered:
                if self._gathering_on is not loop:
                    return None
                self._gathered.append(request)
                return request
            self._gathered.append(request)
            self._gathering_on = loop
        # Under load, linger on the loop's own timer to gather the requests on their way;
        # otherwise commit once the requests already read in this pass are gathered.
        if time.monotonic() - self._loop_committed_at < BUSY_WINDOW_S:
            loop.call_later(self._linger_s, self._commit_gathered, loop, 0)
        else:
            loop.call_soon(self._commit_gathered, loop, 0)
        return request

    def _commit_gathered(self, loop: asyncio.AbstractEventLoop, tries: int) -> None:
        with self._gather_lock:
            gathered, self._gathered, self._gathering_on = self._gathered, [], None
        if not gathered:
            return
        by_topic: dict[str, list[Request]] = {}
        for request in gathered:
            by_topic.setdefault(request.topic, []).append(request)
        batches = list(by_topic.values())
        while batches and self._commit_now(batches[0]):
            batches.pop(0)
        if not batches:
            self._loop_committed_at = time.monotonic()
            return
        left = [request for batch in batches for request in batch]
        if tries + 1 >= LOOP_TRIES or self._closed:
            self._to_thread(left)   # the thread waits for the writer in its turn
            return
        # Another writer holds the log: try again shortly, with what arrives meanwhile.
        with self._gather_lock:
            self._gathered[:0] = left
            self._gathering_on = loop
        loop.call_later(LOOP_RETRY_S, self._commit_gathered, loop, tries + 1)

    def _commit_now(self, batch: list[Request]) -> bool:
        """Commit one topic's requests on the loop unless that means waiting (False)."""
        if not self._commit_lock.acquire(blocking=False):
            return False   # the thread is committing or writing the index
        try:
            was_holding = self._idempotency.pending_since() is not None
            if not self._commit(batch, unless_busy=True):
                return False
        finally:
            self._commit_lock.release()
        if not was_holding and self._idempotency.pending_since() is not None:
            self._queue.put(_WAKE)   # the thread writes the index once it is due
        return True

    # -- the committer thread -------------------------------------------------------------

    def _run(self) -> None:
        committed_at = float("-inf")
        while True:
            first = self._next_request()
            if first is _WAKE:
                continue
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
                    self._commit_locked(batch)
                    self._flush_index()
                    return
                if more is not _WAKE:
                    batch.append(more)
                    size += len(more.records)
            self._commit_locked(batch)
            committed_at = time.monotonic()
            held_since = self._idempotency.pending_since()
            if held_since is not None and committed_at - held_since >= FLUSH_AFTER_S:
                self._flush_index()

    def _next_request(self) -> Request | None:
        """The next request; the index is flushed if it is due while waiting for one."""
        held_since = self._idempotency.pending_since()
        if held_since is not None:
            try:
                return self._queue.get(
                    timeout=max(0.0, held_since + FLUSH_AFTER_S - time.monotonic()))
            except queue.Empty:
                self._flush_index()
        return self._queue.get()

    def _commit_locked(self, batch: list[Request]) -> None:
        with self._commit_lock:
            self._commit(batch)

    def _flush_index(self) -> None:
        # The events are in the log: after a failed write, the next batch's catch-up
        # reads back what the index held. Under the commit lock, so a loop never waits
        # for the write: it hands its batch to this thread instead.
        try:
            with self._commit_lock:
                self._idempotency.flush()
        except LogError as exc:
            log.warning("writing the idempotency index failed (%s); the next publish "
                        "reads what it held back from the log", type(exc).__name__)
        except Exception:  # the committer must outlive a failed write of the index
            log.exception("writing the idempotency index failed")

    def _commit(self, batch: list[Request], unless_busy: bool = False) -> bool:
        """Commit `batch` and answer its requests (True). `unless_busy`: one topic's
        requests, left unanswered and unwritten if another writer holds the log (False)."""
        try:
            results = self._place(batch, unless_busy)
        except _WriterBusy:
            return False
        except LogError as exc:
            for request in batch:
                request.settle(None, exc)
            return True
        except Exception as exc:  # the committer must outlive any one failed batch
            log.exception("publishing a batch failed")
            failure = (StorageFullError("a disk the broker writes to is full") if
                       storage_full(exc) else LogError(f"publish failed: {type(exc).__name__}"))
            failure.__cause__ = exc
            for request in batch:
                request.settle(None, failure)
            return True
        for request, placed in zip(batch, results, strict=True):
            request.settle(placed, None)
        return True

    def _place(self, batch: list[Request], unless_busy: bool = False) -> list[list[Placed]]:
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
            records = [batch[r].records[i] for r, i in slots]
            if unless_busy and self._append_now is not None:
                # One topic (see `_commit`): nothing is written or remembered if busy.
                now = self._append_now(topic, records)
                if now is None:
                    raise _WriterBusy
                appended = now
            else:
                appended = self._log.append(topic, records)
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
