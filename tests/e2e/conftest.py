from collections.abc import Iterator

import pytest

from tests.e2e.harness import BrokerProcess, demo_keys


@pytest.fixture
def broker(tmp_path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(data_dir=tmp_path / "data").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def keys() -> dict[str, str]:
    return demo_keys()
