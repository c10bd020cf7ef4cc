"""A broker (real runtime, router, webhook dispatchers, API) whose `hv-births` webhook
points at a real HTTP receiver on loopback, with a compressed retry schedule."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.bootstrap import Broker, build_broker
from broker.config import load_settings
from broker.demo import story
from connectors.webhook_signing import WebhookSecret
from tests.e2e.harness import DEMO, demo_keys
from tests.integration.webhooks.receiver_server import WebhookReceiver

KEYS = demo_keys()
SUB = "hv-births"


def auth(agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[agency]}"}


def policy_with_webhook(tmp: Path, url: str, sub: str = SUB) -> Path:
    """A copy of the demo policy whose `sub` delivers by webhook to `url`."""
    target = tmp / f"policy-{uuid.uuid4().hex[:6]}"
    shutil.copytree(DEMO / "policy", target)
    path = target / "subscriptions.yaml"
    doc = yaml.safe_load(path.read_text())
    for entry in doc["subscriptions"]:
        if entry["id"] == sub:
            entry["delivery"] = {"mode": "webhook", "url": url}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def a_birth(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = story.STORY[2].build(datetime.now(UTC))
    event.update(changes)
    return event


@dataclass
class WebhookBroker:
    client: TestClient
    runtime: Broker
    secret: str
    stopped: bool = False

    def stop(self) -> None:
        """Shut the broker down (idempotent), e.g. to restart it on the same data."""
        if not self.stopped:
            self.stopped = True
            self.client.__exit__(None, None, None)
            self.runtime.stop()

    def publish_birth(self) -> dict[str, Any]:
        event = a_birth()
        response = self.client.post("/v1/events/birth", json=event,
                                    headers=auth("county-general"))
        assert response.status_code == 202, response.text
        return event


BrokerFactory = Callable[..., WebhookBroker]


@pytest.fixture
def receiver_secret() -> str:
    return WebhookSecret.generate().encoded()


@pytest.fixture
def make_broker(tmp_path: Path, receiver_secret: str) -> Iterator[BrokerFactory]:
    started: list[WebhookBroker] = []
    data = tmp_path / "data"

    def make(url: str, schedule: tuple[float, ...] = (0, 0.1, 0.2),
             secrets: list[str] | None = None, policy: Path | None = None) -> WebhookBroker:
        secrets = [receiver_secret] if secrets is None else secrets
        settings = load_settings(
            policy_dir=policy or policy_with_webhook(tmp_path, url), data_dir=data,
            keys_file=DEMO / "keys.yaml",
            webhooks={"schedule_seconds": schedule, "jitter": 0, "timeout_seconds": 2,
                      "secrets": {SUB: secrets} if secrets else {}},
            audit={"checkpoint_interval_seconds": 3600},
        )
        runtime = build_broker(settings)
        runtime.start()
        client = TestClient(create_app(runtime.api))
        client.__enter__()
        broker = WebhookBroker(client, runtime, secrets[0] if secrets else "")
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def receiver(receiver_secret: str) -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(secrets=[receiver_secret]).start()
    yield server
    server.stop()
