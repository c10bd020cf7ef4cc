"""A broker running the demo policy with one FHIR R4 source, `cgh-fhir`, for
county-general (default county 55025, Dane County, Wisconsin)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.bootstrap import build_broker
from broker.config import load_settings
from tests.e2e.harness import DEMO, demo_keys

KEYS = demo_keys()
URL = "/v1/connectors/fhir/cgh-fhir/Bundle"
FHIR = {"Content-Type": "application/fhir+json"}
FIXTURES = Path(__file__).parents[2] / "fixtures" / "fhir"


def auth(agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[agency]}", **FHIR}


def fixture(name: str) -> dict[str, Any]:
    """A published HL7 example (tests/fixtures/fhir/README.md names its source)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def pull(client: TestClient, sub: str, agency: str) -> list[dict]:
    for _ in range(50):
        body = client.get(f"/v1/subscriptions/{sub}/events", params={"wait": 1},
                          headers={"Authorization": f"Bearer {KEYS[agency]}"}).json()
        if body["events"]:
            return body["events"]
    return []


def pull_all(client: TestClient, sub: str, agency: str, count: int) -> list[dict]:
    """At least `count` events of a subscription, following its cursor."""
    found: list[dict] = []
    cursor = ""
    for _ in range(50):
        if len(found) >= count:
            break
        body = client.get(f"/v1/subscriptions/{sub}/events",
                          params={"after": cursor, "wait": 1},
                          headers={"Authorization": f"Bearer {KEYS[agency]}"}).json()
        found += body["events"]
        cursor = body["next"]
    return found


def pull_nothing(client: TestClient, sub: str, agency: str) -> bool:
    return client.get(f"/v1/subscriptions/{sub}/events", params={"wait": 1}, headers={
        "Authorization": f"Bearer {KEYS[agency]}"}).json()["events"] == []


@pytest.fixture
def api(tmp_path, request) -> Iterator[TestClient]:
    """The broker's API; settings overrides by indirect parametrisation."""
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(yaml.safe_dump({"connectors": [
        {"name": "cgh-fhir", "type": "fhir_r4", "agency": "county-general",
         "county_fips": "55025"}]}))
    settings = load_settings(policy_dir=DEMO / "policy", data_dir=tmp_path / "data",
                             keys_file=DEMO / "keys.yaml", connectors_file=connectors,
                             **getattr(request, "param", {}))
    broker = build_broker(settings)
    broker.start()
    try:
        with TestClient(create_app(broker.api)) as client:
            yield client
    finally:
        broker.stop()
