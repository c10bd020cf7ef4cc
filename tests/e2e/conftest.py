"""End-to-end fixtures. Every test that takes `broker` or `log_backend` runs twice: on the
embedded log and on Kafka (a Tansu broker on loopback, shared by the run; each test gets
topics under a prefix of its own)."""

from collections.abc import Iterator

import pytest

from tests.e2e.harness import BrokerProcess, LogBackend, demo_keys
from tests.kafka_broker import kafka_broker  # noqa: F401  (the session's Kafka broker)


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.slow)])
def log_backend(request: pytest.FixtureRequest) -> LogBackend:
    if request.param == "embedded":
        return LogBackend.embedded()
    return LogBackend.kafka(request.getfixturevalue("kafka_broker").bootstrap_servers)


@pytest.fixture
def broker(tmp_path, log_backend: LogBackend) -> Iterator[BrokerProcess]:
    process = BrokerProcess(data_dir=tmp_path / "data", backend=log_backend).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def keys() -> dict[str, str]:
    return demo_keys()
