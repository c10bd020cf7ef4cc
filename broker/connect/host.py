"""The connectors of one broker process: a worker thread per connector, started and
stopped with the broker, with status for the API and metrics.

`handoff serve` (with `connectors_file` set) and `handoff connect run CONFIG` both get a
`ConnectorHost` from `broker.bootstrap`, so sources publish through the same
authorization, validation, idempotency index, group commit and audit as the HTTP API,
and sinks read the same delivery topics as pull and stream subscribers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from broker.connect.offsets import DeadLetterTopic, TopicOffsetStore
from broker.connect.parts import ConnectParts
from broker.connect.worker import ConnectorWorker
from connectors.base import ConnectorConfig
from connectors.errors import ConnectorConfigError


class ConnectorHost:
    """The connectors of one broker (a `broker.workers.Worker`): `start()` launches
    them, `stop()` ends them."""

    name = "connectors"

    def __init__(self, parts: ConnectParts, configs: Sequence[ConnectorConfig], *,
                 backoff_initial: float = 1.0, backoff_max: float = 60.0) -> None:
        names = [c.name for c in configs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConnectorConfigError(f"connector names must be unique: "
                                       f"{', '.join(duplicates)} appear more than once")
        self.parts = parts
        self._stop = threading.Event()
        self.workers = [ConnectorWorker(parts, self._stop, c, backoff_initial, backoff_max)
                        for c in configs]

    @property
    def offsets(self) -> TopicOffsetStore:
        return self.parts.offsets

    @property
    def dead_letters(self) -> DeadLetterTopic:
        return self.parts.dead_letters

    def add(self, config: ConnectorConfig, backoff_initial: float = 0.0,
            backoff_max: float = 0.0) -> ConnectorWorker:
        """A worker for one more connector, not started (the test harness drives it)."""
        worker = ConnectorWorker(self.parts, self._stop, config, backoff_initial,
                                 backoff_max)
        self.workers.append(worker)
        return worker

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every connector to stop and wait for their threads (up to `timeout` each)."""
        self._stop.set()
        for worker in self.workers:
            worker.join(timeout)

    def healthy(self) -> bool:
        """Connectors fail on their own (their status says so); the broker stays ready."""
        return True

    @property
    def stopping(self) -> threading.Event:
        return self._stop

    def statuses(self) -> list[dict[str, Any]]:
        return [w.status.to_json() for w in self.workers]

    def worker(self, name: str) -> ConnectorWorker | None:
        return next((w for w in self.workers if w.config.name == name), None)

    def settled(self) -> tuple[int, ...] | None:
        """None while some connector is working; once every connector has failed for
        good or found nothing new on its last poll, a token that changes if any of them
        takes in more records (what `handoff connect run --until-idle` waits for)."""
        if all(w.status.state == "failed" or not w.alive
               or (w.status.state == "running" and w.status.idle and w.caught_up())
               for w in self.workers):
            return tuple(w.status.counts["in"] for w in self.workers)
        return None
