"""Fixtures for the event-log integration tests (`open_log` opens Kafka logs on the
session's broker; `unique` names a topic no other test uses)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from broker.log.kafka import KafkaEventLog
from tests.kafka_broker import TansuBroker, kafka_broker  # noqa: F401  (the session's Kafka broker)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def open_log(kafka_broker: TansuBroker) -> Iterator[type[KafkaEventLog]]:  # noqa: F811
    """Opens `KafkaEventLog`s on the session broker and closes them after the test."""
    opened: list[KafkaEventLog] = []

    def opener(**options: object) -> KafkaEventLog:
        log = KafkaEventLog(kafka_broker.bootstrap_servers, **options)  # type: ignore[arg-type]
        opened.append(log)
        return log

    yield opener  # type: ignore[misc]
    for log in opened:
        log.close()
