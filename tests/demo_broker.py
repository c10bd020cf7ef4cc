"""A broker built in the test's own process over the demo policy and keys, with an HTTP
client on its app; and the demo's birth, built now, for tests that publish one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.bootstrap import Broker, build_broker
from broker.config import load_settings
from broker.demo import story
from tests.e2e.harness import DEMO


@contextmanager
def demo_api(data_dir: Path, *, policy_dir: Path = DEMO / "policy",
             raise_server_exceptions: bool = True) -> Iterator[tuple[TestClient, Broker]]:
    """A started broker with the demo's policy (or a copy of it) and keys, data in
    `data_dir`, and a client on its app; stopped on the way out."""
    settings = load_settings(policy_dir=policy_dir, data_dir=data_dir,
                             keys_file=DEMO / "keys.yaml")
    broker = build_broker(settings)
    broker.start()
    try:
        with TestClient(create_app(broker.api),
                        raise_server_exceptions=raise_server_exceptions) as client:
            yield client, broker
    finally:
        broker.stop()


def demo_birth(**changes: Any) -> dict[str, Any]:
    """The story's first birth (Jolene's daughter at County General), built now."""
    first = next(step for step in story.STORY if step.event_type == "birth")
    return {**first.build(datetime.now(UTC)), **changes}
