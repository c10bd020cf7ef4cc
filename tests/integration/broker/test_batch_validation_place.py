"""A batch of up to 100 events is validated on the server's event loop, like one event;
a larger batch in a worker thread, so the streams the loop serves are not held for the
tens of milliseconds it takes. Either way it is accepted whole."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.api.routes_events import INLINE_BATCH
from broker.bootstrap import Broker
from tests.demo_broker import demo_api, demo_birth
from tests.e2e.harness import demo_keys

HOSPITAL = {"Authorization": f"Bearer {demo_keys()['county-general']}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Broker]]:
    with demo_api(tmp_path_factory.mktemp("batch-place") / "data") as running:
        yield running


def on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize(("size", "on_loop"), [(1, True), (INLINE_BATCH, True),
                                               (INLINE_BATCH + 1, False)])
def test_where_a_batch_is_validated_depends_on_its_size(
        api: tuple[TestClient, Broker], monkeypatch: pytest.MonkeyPatch, size: int,
        on_loop: bool) -> None:
    client, runtime = api
    publisher = runtime.publisher
    assert publisher is not None
    seen: list[bool] = []
    prepare = publisher.prepare_json

    def spying(*args: Any) -> Any:
        seen.append(on_a_loop())
        return prepare(*args)

    monkeypatch.setattr(publisher, "prepare_json", spying)
    response = client.post("/v1/events/birth:batch",
                           json={"events": [demo_birth() for _ in range(size)]},
                           headers=HOSPITAL)
    assert response.status_code == 202, response.text
    assert len(response.json()["accepted"]) == size
    assert seen == [on_loop]
