"""What publishing refuses up front, so that nothing accepted is lost later and no
personal data rides in through a name or an id.

- Every event is held to the per-event limit at publish, in a batch as alone (issue 10,
  item 6): accepted, an event over it could never be decoded by the router, and would
  only ever reach quarantine.
- An `event_id` follows a documented pattern and is never a number written like a Social
  Security or telephone number; an unknown field is named by its position (item 10).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.audit.store import AuditFilter
from broker.bootstrap import Broker
from tests.demo_broker import demo_api, demo_birth
from tests.e2e.harness import demo_keys
from tests.waiting import eventually

KEYS = demo_keys()
HOSPITAL = {"Authorization": f"Bearer {KEYS['county-general']}"}
SSN = "274-61-5038"


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[tuple[TestClient, Broker]]:
    data = tmp_path_factory.mktemp("limits") / "data"
    with demo_api(data) as running:
        yield running


def a_birth(**changes: Any) -> dict[str, Any]:
    return demo_birth(**changes)


def appended(runtime: Broker) -> int:
    return sum(runtime.log.end_offset("events.birth", p) for p in range(4))


def refusals(runtime: Broker, reason: str) -> list[Any]:
    return [r for r in runtime.audit.iter_records(AuditFilter(kind="publish_refused"))
            if r.detail["reason"] == reason]


def test_a_batch_holding_an_event_over_the_per_event_limit_is_refused_naming_it(api):
    client, runtime = api
    limit = runtime.settings.api.max_body_bytes
    big = a_birth()
    big["mother"] = {**big["mother"], "first_name": "J" * (limit + 10)}
    before = appended(runtime)
    response = client.post("/v1/events/birth:batch",
                           json={"events": [a_birth(), big, a_birth()]}, headers=HOSPITAL)
    assert response.status_code == 413, response.text
    problem = response.json()
    assert problem["type"] == "/problems/payload-too-large"
    assert [e["field"] for e in problem["errors"]] == ["events[1]"]
    assert appended(runtime) == before       # all or none: nothing was appended
    assert refusals(runtime, "too_large")[-1].detail["fields"] == ["events[1]"]


def test_every_accepted_event_is_routed_none_quarantined(api):
    client, runtime = api
    events = [a_birth() for _ in range(3)]
    response = client.post("/v1/events/birth:batch", json={"events": events},
                           headers=HOSPITAL)
    assert response.status_code == 202
    ids = {e["event_id"] for e in events}
    eventually(lambda: ids <= {r.event_id for r in runtime.audit.iter_records(
        AuditFilter(kind="decision"))}, message="not every accepted event was decided")
    assert not list(runtime.audit.iter_records(AuditFilter(kind="record_quarantined")))


@pytest.mark.parametrize("event_id", [SSN, "274615038", "608-555-0142", "6085550142",
                                      f"ssn-{SSN}", "has space", "x" * 129, "-leading"])
def test_an_event_id_outside_the_pattern_is_refused_without_repeating_it(api, event_id):
    client, runtime = api
    before = appended(runtime)
    response = client.post("/v1/events/birth", json=a_birth(event_id=event_id),
                           headers=HOSPITAL)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["event_id"]
    assert event_id not in response.text
    assert appended(runtime) == before
    assert refusals(runtime, "invalid")[-1].detail["fields"] == ["event_id"]


@pytest.mark.parametrize("event_id", [str(uuid.uuid4()), "order-123456789", "ev:2026.11.07_1",
                                      "HL7-MSG-00042"],
                         ids=["a uuid", "order-123456789", "ev:2026.11.07_1", "HL7-MSG-00042"])
def test_event_ids_in_the_pattern_are_accepted(api, event_id):
    client, _ = api
    response = client.post("/v1/events/birth", json=a_birth(event_id=event_id),
                           headers=HOSPITAL)
    assert response.status_code == 202, response.text


def test_an_unknown_field_is_named_by_position_never_by_its_text(api):
    client, runtime = api
    event = a_birth()
    event["mother"] = {**event["mother"], SSN: "x"}
    response = client.post("/v1/events/birth", json=event, headers=HOSPITAL)
    assert response.status_code == 422
    field = next(e["field"] for e in response.json()["errors"])
    assert field == f"mother.<key {len(event['mother'])}>"
    assert SSN not in response.text
    assert SSN not in repr([r.to_dict() for r in runtime.audit.iter_records()])
