"""An embedded data directory as the demo leaves it, and the session's Kafka broker."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.bootstrap import build_broker
from broker.config import load_settings
from broker.demo import story
from broker.log.port import NewRecord
from broker.log.sqlite import SqliteEventLog
from broker.topics import ROUTER_GROUP
from tests.e2e.harness import DEMO, demo_keys
from tests.kafka_broker import kafka_broker  # noqa: F401  (the session's Kafka broker)
from tests.waiting import eventually


def _routed(log: SqliteEventLog, topics: list[str]) -> bool:
    return all(
        (log.load_group_offset(ROUTER_GROUP, (topic, p)) or 0) == log.end_offset(topic, p)
        for topic in topics for p in range(log.partitions(topic))
    )


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    """A stopped embedded broker's data directory after the demo story, a refused
    publish and an undecodable ingress record (quarantined)."""
    data = tmp_path_factory.mktemp("embedded") / "data"
    keys = demo_keys()
    settings = load_settings(policy_dir=DEMO / "policy", data_dir=data,
                             keys_file=DEMO / "keys.yaml")
    runtime = build_broker(settings)
    runtime.start()
    try:
        with TestClient(create_app(runtime.api)) as client:
            now = datetime.now(UTC)
            for step in story.STORY:
                response = client.post(f"/v1/events/{step.event_type}", json=step.build(now),
                                       headers={"Authorization": f"Bearer {keys[step.agency]}"})
                assert response.status_code == (403 if step.refused else 202), response.text
            refused = client.post("/v1/events/birth", json={"event_id": "x"},
                                  headers={"Authorization": f"Bearer {keys['county-general']}"})
            assert refused.status_code == 422
        runtime.log.append("events.birth", [NewRecord(value=b"not avro", key=b"MPI-X")])
        topics = [t for t in runtime.log.topics() if t.startswith("events.")]
        eventually(lambda: _routed(runtime.log, topics), timeout=30,  # type: ignore[arg-type]
                   message="the router did not route the demo story")
    finally:
        runtime.stop()
    return data
