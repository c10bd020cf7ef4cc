"""Backends the event-log contract suite runs against.

`event_log_factory` yields an `EventLogFactory` per backend. Calling the factory opens a
handle onto the test's store; calling it again after closing the first handle reopens
the same data, which is how tests check that things persist. `target` tells another
process how to open the same store (see crash_writer.py).

To add a backend: add its name to the fixture's params, an entry to `_BACKENDS`, and an
opener to crash_writer.py. The tests do not change.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from broker.log import EventLog, SqliteEventLog
from broker.log.kafka import KafkaEventLog
from tests.kafka_broker import TansuBroker, kafka_broker  # noqa: F401  (session fixture)


@dataclass
class EventLogFactory:
    """Opens handles onto one test's event-log store and closes them after the test."""

    backend: str
    target: dict[str, str]
    """JSON-able description of the store, for crash_writer.py."""
    open_log: Callable[[], EventLog]
    opened: list[EventLog] = field(default_factory=list)

    def __call__(self) -> EventLog:
        log = self.open_log()
        self.opened.append(log)
        return log

    def unique(self, prefix: str) -> str:
        """A topic or group name no other test uses: a Kafka cluster outlives a test."""
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    def close_all(self) -> None:
        for log in self.opened:
            log.close()


def _embedded(request: pytest.FixtureRequest, tmp_path: Path) -> EventLogFactory:
    path = tmp_path / "data" / "log.db"
    return EventLogFactory(
        backend="embedded",
        target={"backend": "embedded", "path": str(path)},
        open_log=lambda: SqliteEventLog(path),
    )


def _kafka(request: pytest.FixtureRequest, tmp_path: Path) -> EventLogFactory:
    # One broker serves the whole run; a prefix per test keeps each test's topics and
    # groups apart from the others', and reopening with it finds the same data.
    broker: TansuBroker = request.getfixturevalue("kafka_broker")
    prefix = f"contract-{uuid.uuid4().hex[:8]}."
    return EventLogFactory(
        backend="kafka",
        target={
            "backend": "kafka",
            "bootstrap_servers": broker.bootstrap_servers,
            "topic_prefix": prefix,
        },
        open_log=lambda: KafkaEventLog(broker.bootstrap_servers, topic_prefix=prefix),
    )


_BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], EventLogFactory]] = {
    "embedded": _embedded,
    "kafka": _kafka,
}


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.slow)])
def event_log_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLogFactory]:
    factory = _BACKENDS[request.param](request, tmp_path)
    yield factory
    factory.close_all()


@pytest.fixture
def event_log(event_log_factory: EventLogFactory) -> EventLog:
    """One open handle onto a fresh store."""
    return event_log_factory()
