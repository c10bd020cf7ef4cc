"""Noticing records that other processes append to Kafka, for `KafkaEventLog.wait`.

An append through this process wakes its waiters at once. Appends by other processes (a
router writing the deliveries a delivery process streams) are only learnt by asking the
cluster for end offsets. One thread per log asks, every `interval_s`, for the union of
the partitions anyone is waiting on, in one request, so a delivery process holding many
server-sent-event streams costs the cluster one ListOffsets request per interval rather
than one per stream; with nobody waiting it asks nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from kafka import TopicPartition

from broker.errors import LogError

log = logging.getLogger(__name__)

_ERROR_BACKOFF_S = 0.5

EndOffsets = Callable[[list[TopicPartition]], Mapping[TopicPartition, int]]


class EndOffsetWatcher:
    """Polls end offsets of the watched partitions and hands them to `on_ends`."""

    def __init__(self, end_offsets: EndOffsets,
                 on_ends: Callable[[Mapping[TopicPartition, int]], None],
                 interval_s: float) -> None:
        if interval_s <= 0:
            raise LogError("the Kafka poll interval must be positive")
        self._end_offsets = end_offsets
        self._on_ends = on_ends
        self._interval_s = interval_s
        self._state = threading.Condition()
        # Guarded by _state:
        self._watched: Counter[TopicPartition] = Counter()
        self._closed = False
        self._thread: threading.Thread | None = None

    def watch(self, tps: Iterable[TopicPartition]) -> None:
        """Start watching `tps` (counted: every `watch` needs its `unwatch`)."""
        with self._state:
            if self._closed:
                return
            # A list, not the mapping a caller may pass: Counter.update would add the
            # mapping's values (offsets) instead of counting one watcher.
            self._watched.update(list(tps))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="handoff-kafka-watch",
                                                daemon=True)
                self._thread.start()
            self._state.notify_all()

    def unwatch(self, tps: Iterable[TopicPartition]) -> None:
        with self._state:
            self._watched.subtract(list(tps))
            self._watched = +self._watched   # drop partitions nobody watches any more

    def close(self) -> None:
        """Stop the thread. Idempotent."""
        with self._state:
            self._closed = True
            self._state.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        failing = False
        while True:
            with self._state:
                while not self._watched and not self._closed:
                    self._state.wait()
                if self._closed:
                    return
                wanted = list(self._watched)
            try:
                ends = self._end_offsets(wanted)
            except LogError as exc:
                # Waiters time out and read for themselves, where the error surfaces.
                if not failing:
                    log.warning("cannot ask Kafka for end offsets; will keep trying: %s", exc)
                failing = True
                time.sleep(_ERROR_BACKOFF_S)
                continue
            except Exception:  # top-level loop: a dead watcher would strand every waiter
                log.exception("asking Kafka for end offsets failed; will keep trying")
                failing = True
                time.sleep(_ERROR_BACKOFF_S)
                continue
            failing = False
            self._on_ends(ends)
            time.sleep(self._interval_s)
