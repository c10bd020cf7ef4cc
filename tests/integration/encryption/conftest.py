"""Fixtures for encryption at rest: a KEK, and event logs that encrypt, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.crypto import DataKeyring, LocalKek, LogKeyStore
from broker.crypto.encrypted_log import EncryptedEventLog, encrypted_log
from broker.crypto.kek import write_new_kek
from broker.log import EventLog, SqliteEventLog
from broker.log.kafka import KafkaEventLog
from tests.contract.conftest import EventLogFactory
from tests.kafka_broker import TansuBroker, kafka_broker  # noqa: F401  (session fixture)

EVERY_TOPIC = ("[!_]*",)
"""Encrypt every topic but the broker's own (`_keys`), so the whole contract runs sealed."""


@pytest.fixture
def kek_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "kek"
    write_new_kek(path)
    return path


def encrypted(inner: EventLog, kek: LocalKek, topics=EVERY_TOPIC, **keyring_options
              ) -> EncryptedEventLog:
    return encrypted_log(inner, DataKeyring(LogKeyStore(inner), kek, **keyring_options),
                             topics)


def _opener(backend: str, request: pytest.FixtureRequest, tmp_path: Path
            ) -> tuple[dict[str, str], Callable[[], EventLog]]:
    if backend == "embedded":
        path = tmp_path / "data" / "log.db"
        return {"backend": "embedded", "path": str(path)}, lambda: SqliteEventLog(path)
    broker: TansuBroker = request.getfixturevalue("kafka_broker")
    prefix = f"enc-{uuid.uuid4().hex[:8]}."
    return ({"backend": "kafka", "bootstrap_servers": broker.bootstrap_servers,
             "topic_prefix": prefix},
            lambda: KafkaEventLog(broker.bootstrap_servers, topic_prefix=prefix))


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.slow)])
def event_log_factory(request: pytest.FixtureRequest, tmp_path: Path
                      ) -> Iterator[EventLogFactory]:
    """The contract suite's factory, every handle an `EncryptedEventLog` over the backend,
    sharing one KEK so a reopened handle reads what an earlier one wrote."""
    kek = LocalKek(bytes(range(32)))
    target, open_inner = _opener(request.param, request, tmp_path)
    factory = EventLogFactory(backend=request.param, target=target,
                              open_log=lambda: encrypted(open_inner(), kek))
    yield factory
    factory.close_all()


@pytest.fixture
def event_log(event_log_factory: EventLogFactory) -> EventLog:
    return event_log_factory()
