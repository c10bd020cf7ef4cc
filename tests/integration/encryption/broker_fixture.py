"""A real broker runtime (embedded log, router thread, HTTP API in-process) for the
encryption and retention tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.bootstrap import Broker, build_broker
from broker.config import load_settings
from tests.demo_broker import demo_birth
from tests.e2e.harness import DEMO, demo_keys
from tests.waiting import eventually

KEYS = demo_keys()


def auth(agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[agency]}"}


@contextmanager
def running_broker(data: Path, **settings: Any) -> Iterator[tuple[TestClient, Broker]]:
    loaded = load_settings(policy_dir=DEMO / "policy", data_dir=data,
                           keys_file=DEMO / "keys.yaml", **settings)
    runtime = build_broker(loaded)
    runtime.start()
    try:
        with TestClient(create_app(runtime.api)) as client:
            yield client, runtime
    finally:
        runtime.stop()


def marked_birth(marker: str) -> dict[str, Any]:
    """A demo birth whose mother's name and address carry `marker`."""
    event = demo_birth()
    event["mother"]["last_name"] = f"{marker}-last"
    event["mother"]["street_address"] = f"{marker} Larkspur Court"
    return event


def new_marker() -> str:
    return "Zq" + uuid.uuid4().hex[:12]


def publish(client: TestClient, event: dict[str, Any]) -> None:
    response = client.post("/v1/events/birth", json=event, headers=auth("county-general"))
    assert response.status_code == 202, response.text


def pull(client: TestClient, expect: int, sub: str = "eval-births",
         agency: str = "state-evaluation", timeout: float = 15) -> list[dict[str, Any]]:
    """Every delivery of `sub` from the start, waiting until `expect` arrived."""
    events: list[dict[str, Any]] = []
    cursor = ""

    def pulled_to_the_end() -> bool:
        nonlocal cursor
        body = client.get(f"/v1/subscriptions/{sub}/events",
                          params={"after": cursor, "wait": 0.5, "limit": 500},
                          headers=auth(agency)).json()
        events.extend(body["events"])
        cursor = body["next"]
        return len(events) >= expect and not body["events"]

    eventually(pulled_to_the_end, timeout=timeout, interval=0,
               message=lambda: f"{sub}: pulled {len(events)} of {expect} events")
    return events


def stored_bytes(data: Path) -> bytes:
    """Every byte the broker keeps on disk: all files of the data directory."""
    return b"".join(p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file())
