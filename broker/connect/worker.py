"""One connector's thread: build, start, run batches, restart with backoff after a
failure; and the drivers that see one batch through (`SourceDriver`, `SinkDriver`),
which the test harness also calls directly."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from broker.connect.parts import ConnectParts
from broker.connect.source_batch import SourceBatchPublisher
from broker.connect.status import ConnectorStatus, describe_error
from broker.delivery.cursor import Cursor
from connectors.base import (
    ConnectorConfig,
    ConnectorContext,
    FieldProblem,
    Position,
    SinkConfig,
    SinkConnector,
    SinkContext,
    SourceConfig,
    SourceConnector,
)
from connectors.dead_letters import DeadLetter
from connectors.errors import ConnectorConfigError, FatalConnectorError
from connectors.registry import build_connector

log = logging.getLogger("handoff.connectors")


class ConnectorWorker:
    """Runs one connector in its own thread, restarting it after failures."""

    def __init__(self, parts: ConnectParts, stopping: threading.Event,
                 config: ConnectorConfig, backoff_initial: float, backoff_max: float) -> None:
        self.parts = parts
        self.stopping = stopping
        self.config = config
        self._backoff = (backoff_initial, backoff_max)
        kind = "source" if isinstance(config, SourceConfig) else "sink"
        self.status = ConnectorStatus(config.name, config.type, kind)
        self.status.position = parts.offsets.get(config.name)
        self._log = log.getChild(config.name)
        self._progressed = False
        self._batch_failed = 0
        self._sink_driver: SinkDriver | None = None
        self._thread = threading.Thread(target=self._run, name=f"connector-{config.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def caught_up(self) -> bool:
        """For a sink, whether it has put everything delivered so far; True for sources."""
        driver = self._sink_driver
        return driver is None or driver.caught_up()

    # -- the restart loop ---------------------------------------------------------------

    def _run(self) -> None:
        stop = self.stopping
        metrics = self.parts.metrics
        failures = 0
        while not stop.is_set():
            self.status.set_state("starting" if failures == 0 else "restarting")
            try:
                self._run_once()
            except Exception as exc:  # noqa: BLE001 - the top of the connector's loop
                metrics.up.labels(self.config.name).set(0)
                self.status.failed(exc)
                self._log.error("connector %s failed: %s", self.config.name,
                                describe_error(exc))
                self._log.debug("connector failure detail", exc_info=True)
                if isinstance(exc, FatalConnectorError | ConnectorConfigError):
                    # Retrying cannot help until an operator fixes something.
                    self.status.set_state("failed")
                    return
                # Backoff grows only while the connector fails without getting anywhere.
                failures = 1 if self._progressed else failures + 1
            else:
                break  # returned because stopping
            if stop.is_set():
                break
            limit = self.config.max_restarts
            if limit is not None and failures > limit:
                self.status.set_state("failed")
                return
            self.status.set_state("restarting")
            self.status.restarts += 1
            metrics.restarts.labels(self.config.name).inc()
            initial, most = self._backoff
            stop.wait(min(most, initial * 2 ** (failures - 1)))
        metrics.up.labels(self.config.name).set(0)
        self.status.set_state("stopped")

    def _run_once(self) -> None:
        """Build, start and run a fresh connector instance until stopping, or raise.
        `_progressed` tells afterwards whether it committed anything."""
        self._progressed = False
        connector = build_connector(self.config)
        context = self.context()
        connector.start(context)
        try:
            self.status.set_state("running")
            self.parts.metrics.up.labels(self.config.name).set(1)
            if isinstance(connector, SourceConnector):
                self._source_loop(connector)
            else:
                self._sink_loop(connector, context)
        finally:
            try:
                connector.stop()
            except Exception as exc:  # noqa: BLE001 - stop errors must not mask the cause
                self._log.warning("connector %s: stop raised %s", self.config.name,
                                  describe_error(exc))

    def context(self) -> ConnectorContext:
        """What `start` is handed: the committed position, a state folder, the
        dead-letter log and the schema lookup."""
        parts = self.parts
        state_dir = parts.state_root / self.config.name
        state_dir.mkdir(parents=True, exist_ok=True)
        common: dict[str, Any] = {
            "name": self.config.name, "offset": parts.offsets.get(self.config.name),
            "state_dir": state_dir, "stopping": self.stopping, "log": self._log,
            "dead_letter": self._dead_letter, "dead_letters": parts.dead_letters,
            "schemas": parts.feed,
        }
        if isinstance(self.config, SinkConfig):
            return SinkContext(**common, subscription=self.config.subscription)
        return ConnectorContext(**common)

    def _dead_letter(self, event_id: str | None, reference: str | None,
                     problems: Sequence[FieldProblem]) -> None:
        self.parts.dead_letters.append([DeadLetter(
            self.config.name, tuple(problems), event_id=event_id, reference=reference)])
        self._count("failed", 1)
        self._batch_failed += 1

    def _count(self, outcome: str, n: int) -> None:
        if n:
            self.status.count(outcome, n)  # type: ignore[arg-type]
            self.parts.metrics.records.labels(self.config.name, outcome).inc(n)

    def _committed(self, position: Position) -> None:
        self.parts.offsets.commit(self.config.name, position)
        self.status.position = position
        self._progressed = True

    # -- the loops -----------------------------------------------------------------------

    def _source_loop(self, connector: SourceConnector[Any]) -> None:
        assert isinstance(self.config, SourceConfig)
        driver = SourceDriver(self, connector)
        stop = self.stopping
        while not stop.is_set():
            self.status.idle = False
            worked = driver.step()
            self.status.idle = not worked
            if not worked:
                stop.wait(self.config.poll_interval_seconds)

    def _sink_loop(self, connector: SinkConnector[Any], context: ConnectorContext) -> None:
        assert isinstance(self.config, SinkConfig)
        driver = SinkDriver(self, connector, context)
        stop = self.stopping
        self._sink_driver = driver
        while not stop.is_set():
            self.status.idle = False
            worked = driver.step()
            self.status.idle = not worked
            if not worked:
                driver.wait(self.config.poll_interval_seconds)


class SourceDriver:
    """One source's poll → publish → persist position → commit cycle, one batch a step.

    The worker thread calls `step` in a loop; `broker.testing` calls it directly.
    """

    def __init__(self, worker: ConnectorWorker, connector: SourceConnector[Any]) -> None:
        assert isinstance(worker.config, SourceConfig)
        self.worker = worker
        self.connector = connector
        self.publisher = SourceBatchPublisher(worker.parts.publisher, worker.config,
                                              worker.parts.dead_letters)

    def step(self) -> bool:
        """Poll once and see the batch through; False when the source had nothing."""
        batch = self.connector.poll()
        if not batch:
            return False
        worker = self.worker
        worker._count("in", len(batch))
        outcomes = self.publisher.publish(batch)
        for outcome, label in (("published", "out"), ("duplicate", "duplicate"),
                               ("dead_letter", "failed")):
            worker._count(label, sum(o.outcome == outcome for o in outcomes))
        position = batch[-1].position
        worker._committed(position)
        self.connector.commit(position, outcomes)
        return True


class SinkDriver:
    """One sink's read → put → persist position → commit cycle, one batch a step."""

    def __init__(self, worker: ConnectorWorker, connector: SinkConnector[Any],
                 context: ConnectorContext) -> None:
        assert isinstance(worker.config, SinkConfig)
        self.worker = worker
        self.connector = connector
        self.config = worker.config
        self.feed = worker.parts.feed
        subscription = self.config.subscription
        if subscription not in worker.parts.policy.current.bundle.subscriptions:
            raise FatalConnectorError(
                f"subscription '{subscription}' is not in the policy bundle; fix "
                "'subscription' in the connector's config or add it to subscriptions.yaml")
        partitions = self.feed.partitions(subscription)
        saved = context.offset.get("cursor") if context.offset else None
        self.cursor = Cursor.parse(saved, partitions) if saved else Cursor.start(partitions)

    def step(self) -> bool:
        """Put the next batch of deliveries; False when there were none."""
        subscription = self.config.subscription
        deliveries, after = self.feed.read(subscription, self.cursor, self.config.batch_size)
        if not deliveries:
            return False
        worker = self.worker
        worker._count("in", len(deliveries))
        worker._batch_failed = 0
        self.connector.put(deliveries)
        worker._count("out", len(deliveries) - worker._batch_failed)
        position = {"cursor": str(after)}
        worker._committed(position)
        self.connector.commit(position)
        self.cursor = after
        return True

    def wait(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for deliveries past the cursor."""
        self.feed.wait(self.config.subscription, self.cursor, timeout)

    def caught_up(self) -> bool:
        ends = self.feed.end_offsets(self.config.subscription)
        return all(end <= offset for end, offset in zip(ends, self.cursor.offsets,
                                                        strict=False))
