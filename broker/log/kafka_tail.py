"""Following the partitions that `KafkaEventLog.wait` callers wait on, by long-poll fetch.

An append through this process wakes its waiters at once. Appends by other processes (a
router writing the deliveries a delivery process streams) reach this process only
through the cluster. One thread per log follows, with one kafka-python consumer, every
partition anyone waits on: it fetches from where the waiters are, and the broker holds
each fetch until records arrive or the fetch wait passes (`FetchWait`: short while
records flow, up to the idle wait when they do not). So a delivery process holding many
server-sent-event streams sends one fetch at a time for all of them, an idle one a few a
second, and one with nobody waiting none at all.

What a fetch brings is kept (the last `keep` records per partition), because the waiter
it wakes reads those very records next: `recent` hands them out without another round
trip. A partition nobody waits on any more is followed for `linger_s` longer (a stream
waits again right after each read) and then dropped.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka import errors as kafka_errors

from broker.log.kafka_connection import KafkaConnection, translate_kafka_error
from broker.log.kafka_fetch_wait import FetchWait, set_fetch_wait
from broker.log.kafka_reader import to_log_record
from broker.log.port import LogRecord

log = logging.getLogger(__name__)

_SLICE_MS = 50
"""Longest the thread stays in one `poll` before looking for newly watched partitions
(the fetch in flight carries on across slices)."""
_ERROR_BACKOFF_S = 0.5
_HEALTHY_S = 2.0
"""A tail whose last fetch slice ended longer ago than this is not trusted to be current."""

OnEnds = Callable[[Mapping[TopicPartition, int]], None]


@dataclass
class _Recent:
    """Records of one partition the tail fetched: every surviving record with an offset
    in [start, end) is in `records` (compacted topics have gaps)."""

    start: int
    end: int
    records: deque[LogRecord] = field(default_factory=deque)


class PartitionTail:
    """Follows watched partitions (Kafka names) and reports their ends to `on_ends`.

    `bare_name` turns a Kafka topic name into the port's, for the records kept.
    """

    def __init__(self, connection: KafkaConnection, on_ends: OnEnds,
                 bare_name: Callable[[str], str], fetch_wait: FetchWait,
                 keep: int = 2000, linger_s: float = 30.0) -> None:
        self._connection = connection
        self._on_ends = on_ends
        self._bare_name = bare_name
        self._fetch_wait = fetch_wait
        self._keep = keep
        self._linger_s = linger_s
        self._state = threading.Condition()
        # Guarded by _state:
        self._watched: Counter[TopicPartition] = Counter()
        self._starts: dict[TopicPartition, int] = {}
        """Where to start following a partition not followed yet (its first waiter)."""
        self._last_watched: dict[TopicPartition, float] = {}
        self._recent: dict[TopicPartition, _Recent] = {}
        self._skips: dict[TopicPartition, int] = {}
        """Ends of appends through this process: the tail need not fetch what it wrote."""
        self._closed = False
        self._fetched_at = float("-inf")
        """When the thread last completed a fetch slice without error (monotonic)."""
        self._thread: threading.Thread | None = None
        # Used by the thread alone:
        self._consumer: KafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}
        """Where the consumer fetches next, as far as the tail knows."""

    # -- called by waiters and readers ------------------------------------------------------

    def watch(self, positions: Mapping[TopicPartition, int]) -> None:
        """Follow `positions`' partitions (counted: every `watch` needs its `unwatch`),
        from the given offset for a partition not followed yet."""
        with self._state:
            if self._closed:
                return
            for tp, offset in positions.items():
                self._watched[tp] += 1
                if tp not in self._last_watched and tp not in self._starts:
                    self._starts[tp] = offset
                self._last_watched[tp] = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="handoff-kafka-tail",
                                                daemon=True)
                self._thread.start()
            self._state.notify_all()

    def unwatch(self, tps: Iterable[TopicPartition]) -> None:
        with self._state:
            now = time.monotonic()
            for tp in tps:
                self._watched[tp] -= 1
                self._last_watched[tp] = now
            self._watched = +self._watched   # drop partitions nobody watches any more

    def skip(self, ends: Mapping[TopicPartition, int]) -> None:
        """Records before `ends` were appended through this process (whose waiters
        already know): a followed partition behind one of them moves on to it."""
        with self._state:
            for tp, end in ends.items():
                if tp in self._last_watched and end > self._skips.get(tp, -1):
                    self._skips[tp] = end

    def recent(self, tp: TopicPartition, offset: int, max_records: int) -> list[LogRecord]:
        """Records of `tp` from `offset` on that the tail fetched, if it holds the
        records right from `offset`; otherwise an empty list (read them elsewhere)."""
        with self._state:
            recent = self._recent.get(tp)
            if recent is None or not recent.records or not recent.start <= offset < recent.end:
                return []
            records = recent.records
            # Offsets are consecutive but where compaction left gaps: try the direct
            # index first.
            first = offset - records[0].offset
            if not (0 <= first < len(records) and records[first].offset == offset):
                first = next((i for i, r in enumerate(records) if r.offset >= offset),
                             len(records))
            return list(itertools.islice(records, first, first + max_records))

    def follows(self, tp: TopicPartition) -> bool:
        """Whether the tail follows `tp` and is working: what it knows of `tp`'s end is
        then at most one fetch wait old."""
        with self._state:
            return (tp in self._last_watched
                    and time.monotonic() - self._fetched_at < _HEALTHY_S)

    def close(self) -> None:
        """Stop following. Idempotent."""
        with self._state:
            self._closed = True
            self._state.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        if self._consumer is not None:
            with suppress(kafka_errors.KafkaError):
                self._consumer.close(autocommit=False)

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        failing = False
        while True:
            with self._state:
                while not self._last_watched and not self._closed:
                    self._state.wait()
                if self._closed:
                    return
                wanted, starts = self._wanted()
            try:
                fetched = self._fetch(wanted, starts)
            except (kafka_errors.KafkaError, OSError) as exc:
                # Waiters time out and read for themselves, where the error surfaces.
                if not failing:
                    log.warning("cannot follow Kafka partitions; will keep trying: %s",
                                translate_kafka_error(exc, "follow partitions",
                                                      self._connection))
                failing = True
                self._forget_consumer()
                time.sleep(_ERROR_BACKOFF_S)
                continue
            except Exception:  # top-level loop: a dead tail would strand every waiter
                log.exception("following Kafka partitions failed; will keep trying")
                failing = True
                self._forget_consumer()
                time.sleep(_ERROR_BACKOFF_S)
                continue
            failing = False
            with self._state:
                self._fetched_at = time.monotonic()
            if fetched:
                self._on_ends(fetched)

    def _wanted(self) -> tuple[set[TopicPartition], dict[TopicPartition, int]]:
        # Called with the state held: partitions to follow now, and where new ones start.
        now = time.monotonic()
        for tp, last in list(self._last_watched.items()):
            if tp not in self._watched and now - last > self._linger_s:
                del self._last_watched[tp]
                self._recent.pop(tp, None)
                self._positions.pop(tp, None)
        wanted = set(self._last_watched)
        starts = {tp: offset for tp, offset in self._starts.items() if tp in wanted}
        for tp, end in self._skips.items():
            if tp in wanted and tp not in starts and end > self._positions.get(tp, end):
                starts[tp] = end
        self._skips.clear()
        return wanted, starts

    def _fetch(self, wanted: set[TopicPartition], starts: dict[TopicPartition, int]
               ) -> dict[TopicPartition, int]:
        """One slice of following `wanted`: the ends it learnt."""
        consumer = self._consumer or self._connect()
        if consumer.assignment() != wanted:
            consumer.assign(sorted(wanted))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
            self._positions[tp] = offset
            with self._state:
                self._recent[tp] = _Recent(offset, offset)
                if self._starts.get(tp) == offset:
                    del self._starts[tp]
        wait_ms = self._fetch_wait.current_ms
        set_fetch_wait(consumer, wait_ms)
        fetched = consumer.poll(timeout_ms=min(_SLICE_MS, wait_ms))
        self._fetch_wait.note(any(fetched.values()))
        # Ends come from the records handed out, not from high watermarks: a response
        # that lands after `poll` returned moves the high watermark before its records
        # are kept, and a waiter woken then would miss them here.
        ends: dict[TopicPartition, int] = {}
        for tp, records in fetched.items():
            if not records:
                continue
            after = records[-1].offset + 1
            ends[tp] = self._positions[tp] = after
            self._keep_records(tp, records, after)
            high_watermark = consumer.highwater(tp)
            if high_watermark is not None and high_watermark - after > self._keep:
                # Far behind (a first waiter with an old cursor): its waiters are awake
                # now; follow only what comes next rather than fetch the backlog.
                ends[tp] = self._positions[tp] = int(high_watermark)
                consumer.seek(tp, ends[tp])
        return ends

    def _keep_records(self, tp: TopicPartition, records: list[object], position: int) -> None:
        topic = self._bare_name(tp.topic)
        converted = [to_log_record(record, topic) for record in records]
        with self._state:
            recent = self._recent.get(tp)
            first = converted[0].offset
            if recent is None or not recent.start <= first <= recent.end:
                recent = self._recent[tp] = _Recent(first, first)
            recent.records.extend(converted)
            recent.end = max(recent.end, position, converted[-1].offset + 1)
            while len(recent.records) > self._keep:
                recent.records.popleft()
                recent.start = recent.records[0].offset

    def _connect(self) -> KafkaConsumer:
        self._consumer = KafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            # A waiter past the end (a cursor from elsewhere) follows from the end.
            auto_offset_reset="latest",
            allow_auto_create_topics=False,
            fetch_max_wait_ms=self._fetch_wait.current_ms,
            **self._connection.client_options(),
        )
        return self._consumer

    def _forget_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._positions.clear()
        with self._state:
            # Positions are lost with the consumer: follow again from each partition's
            # last known place.
            for tp, recent in self._recent.items():
                self._starts.setdefault(tp, recent.end)
        if consumer is not None:
            with suppress(kafka_errors.KafkaError):
                consumer.close(autocommit=False)
