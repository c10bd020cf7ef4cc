"""A test harness for connectors: a real broker in a temporary folder, driven step by step.

It builds the broker through `broker.bootstrap`, so it sits above it, beside the CLI.

The harness builds the same broker `handoff serve` runs (embedded log, registry, policy,
publish path, router, audit) in a data folder you give it, then runs your connector's
batches in the calling thread, through the same code the connector runtime uses. Tests
stay deterministic: no sleeps, no threads to wait for.

    from broker.testing import ConnectorHarness

    def test_births_are_published(tmp_path):
        with ConnectorHarness(tmp_path / "data") as harness:
            source = harness.connector({"type": "my_source", "name": "s",
                                        "agency": "county-general", ...})
            source.start()
            source.run_until_idle()
            assert [e["subject_id"] for e in harness.events("birth")] == ["MPI-1"]
            assert harness.dead_letters("s") == []
            assert source.offset == {"row": 1}

Crashes: `source.crash()` abandons the instance without calling `stop` (as `kill -9`
would), and `source.step(crash_before_commit=True)` publishes a batch and then dies
before its position is persisted; `source.start()` then starts a fresh instance from the
committed position. For sinks, `harness.publish(...)` sends events as an agency,
`harness.route()` runs the router, and `sink.run_until_idle()` puts the deliveries.

The policy defaults to the demo agencies' bundle (`examples/demo/policy` of a Handoff
checkout); pass `policy_dir` to use your own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from broker.auth import Principal, Role
from broker.bootstrap import Broker, build_broker
from broker.config import load_settings
from broker.connect.host import ConnectorHost
from broker.connect.worker import ConnectorWorker, SinkDriver, SourceDriver
from broker.delivery.cursor import Cursor
from broker.delivery.feed import Delivery
from broker.ingest.group_commit import Placed
from broker.topics import ingress_topic
from connectors.base import (
    ConnectorConfig,
    ConnectorContext,
    Position,
    SinkConnector,
    SourceConnector,
)
from connectors.dead_letters import DeadLetter
from connectors.registry import build_connector, parse_config
from schemas.jsonform import record_to_json


def demo_policy_dir() -> Path:
    """The demo agencies' policy bundle of this checkout."""
    import broker

    folder = Path(broker.__file__).resolve().parents[1] / "examples" / "demo" / "policy"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: the demo policy is not here (Handoff is not installed from a "
            "checkout); pass policy_dir= to ConnectorHarness")
    return folder


class ConnectorHarness:
    """An in-process broker for connector tests. Use as a context manager."""

    def __init__(self, data_dir: Path, policy_dir: Path | None = None,
                 **settings: Any) -> None:
        self.settings = load_settings(data_dir=data_dir,
                                      policy_dir=policy_dir or demo_policy_dir(), **settings)
        # Every role, no connectors of its own and no router thread: the harness runs
        # connector batches and routing itself, in the calling thread.
        self.broker: Broker = build_broker(self.settings, connectors=(), router_thread=False)
        assert self.broker.connectors is not None and self.broker.publisher is not None
        self.connectors: ConnectorHost = self.broker.connectors
        self._closed = False

    def __enter__(self) -> ConnectorHarness:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.connectors.stop(timeout=1)
            self.broker.stop()

    # -- connectors -----------------------------------------------------------------------

    def connector(self, config: ConnectorConfig | Mapping[str, Any]) -> HarnessConnector:
        """A connector to drive; `config` is validated as a connectors file entry is."""
        if not isinstance(config, ConnectorConfig):
            config = parse_config(config)
        return HarnessConnector(self, self.connectors.add(config))

    # -- the broker around it -------------------------------------------------------------

    def publish(self, agency: str, event_type: str, *events: dict[str, Any]) -> list[Placed]:
        """Publish events as `agency` (as its API key would), blocking until durable."""
        principal = Principal(f"test:{agency}", agency, frozenset({Role.PUBLISH}))
        assert self.broker.publisher is not None
        return self.broker.publisher.publish_json(principal, event_type, list(events))

    def route(self) -> int:
        """Run the router until every published event is routed; returns how many."""
        router = self.broker.router
        assert router is not None
        total = 0
        while True:
            routed = router.step()
            if routed == 0:
                return total
            total += routed

    def events(self, event_type: str) -> list[dict[str, Any]]:
        """Every event on `events.<type>`, as JSON, in append-time order."""
        log, topic = self.broker.log, ingress_topic(event_type)
        records = []
        for partition in range(log.partitions(topic)):
            records.extend(log.read(topic, partition, 0, 1_000_000))
        records.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
        out = []
        for record in records:
            schema_id, value = self.broker.codec.decode(record.value)
            schema = json.loads(self.broker.registry.by_id(schema_id).schema)
            out.append(record_to_json(schema, value))
        return out

    def deliveries(self, subscription: str) -> list[Delivery]:
        """Everything on `deliver.<subscription>` so far (run `route()` first)."""
        feed = self.broker.feed
        deliveries, _ = feed.read(subscription, Cursor.start(feed.partitions(subscription)),
                                  1_000_000)
        return deliveries

    def dead_letters(self, connector: str | None = None) -> list[DeadLetter]:
        return list(self.connectors.dead_letters.read(connector))

    def offset(self, connector: str) -> Position | None:
        """The connector's committed position, as the event log holds it."""
        return self.connectors.offsets.get(connector)


class HarnessConnector:
    """One connector under test, run a batch at a time in the calling thread."""

    def __init__(self, harness: ConnectorHarness, worker: ConnectorWorker) -> None:
        self.harness = harness
        self.worker = worker
        self.config = worker.config
        self.instance: SourceConnector[Any] | SinkConnector[Any] | None = None
        self.context: ConnectorContext | None = None
        self._driver: SourceDriver | SinkDriver | None = None

    def start(self) -> None:
        """Build a fresh instance and start it from the committed position."""
        instance = build_connector(self.config)
        context = self.worker.context()
        instance.start(context)
        self.instance, self.context = instance, context
        self.worker.status.set_state("running")
        if isinstance(instance, SourceConnector):
            self._driver = SourceDriver(self.worker, instance)
        else:
            self._driver = SinkDriver(self.worker, instance, context)

    def step(self, crash_before_commit: bool = False) -> bool:
        """Run one batch; False when there was nothing to do. With `crash_before_commit`,
        the batch is published (source) or put (sink) and the instance then abandoned
        before its position is persisted, as if the process had been killed there."""
        driver = self._require()
        if not crash_before_commit:
            return driver.step()
        if isinstance(driver, SourceDriver):
            batch = driver.connector.poll()
            driver.publisher.publish(batch)
            worked = bool(batch)
        else:
            subscription = driver.config.subscription
            deliveries, _ = driver.feed.read(subscription, driver.cursor,
                                             driver.config.batch_size)
            if deliveries:
                driver.connector.put(deliveries)
            worked = bool(deliveries)
        self.crash()
        return worked

    def run_until_idle(self, max_steps: int = 10_000) -> int:
        """Step until the connector has nothing more; returns the batches run."""
        for done in range(max_steps):
            if not self.step():
                return done
        raise AssertionError(f"connector {self.config.name} still busy after {max_steps} "
                             "batches")

    def stop(self) -> None:
        """Stop the instance cleanly, as the runtime does at shutdown."""
        if self.instance is not None:
            self.instance.stop()
        self.instance = self.context = self._driver = None
        self.worker.status.set_state("stopped")

    def crash(self) -> None:
        """Abandon the instance without `stop`, as `kill -9` would."""
        self.instance = self.context = self._driver = None

    @property
    def offset(self) -> Position | None:
        return self.harness.offset(self.config.name)

    @property
    def status(self) -> dict[str, Any]:
        return self.worker.status.to_json()

    def _require(self) -> SourceDriver | SinkDriver:
        if self._driver is None:
            raise RuntimeError(f"connector {self.config.name} is not started; call start()")
        return self._driver
