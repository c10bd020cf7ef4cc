"""Suite-wide test configuration.

The fast lane, `python3 -m pytest -m "not slow"`, leaves out every test marked `slow`:
tests that start processes (a broker, a connector, Prometheus), a Kafka broker or a
PostgreSQL server, or take more than a couple of seconds. A test that uses the
`kafka_broker`, `postgres_server` or `postgres_database` fixture is marked `slow` here,
so nobody has to remember to; fixtures that reach those services through
`request.getfixturevalue` mark their Kafka or PostgreSQL parameters themselves
(`pytest.param("kafka", marks=pytest.mark.slow)`). CI runs everything.

Property tests have no deadline: they check what is computed, and a test never times
anything (speed is measured by the scripts in bench/). A busy machine made an example
of the compiled-codec properties take 309 ms against Hypothesis's default 200 ms.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("handoff", deadline=None)
settings.load_profile("handoff")

SERVICE_FIXTURES = frozenset({"kafka_broker", "postgres_server", "postgres_database"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """The cyclic collector's thresholds and frozen objects as they were before the test
    (for tests that settle the heap as a serving or routing process does)."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
