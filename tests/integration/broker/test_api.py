"""The HTTP API against a real runtime (embedded log, audit store, router thread)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from fastapi.testclient import TestClient

from broker.audit.store import AuditFilter
from broker.bootstrap import Broker
from broker.demo import story
from tests.demo_broker import demo_api, demo_birth
from tests.e2e.harness import demo_keys
from tests.waiting import eventually

# A broker runs in the test's process (seconds a file): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

KEYS = demo_keys()


def auth(agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[agency]}"}


@pytest.fixture
def api(tmp_path) -> Iterator[tuple[TestClient, Broker]]:
    with demo_api(tmp_path / "data") as running:
        yield running


def a_birth() -> dict[str, Any]:
    return demo_birth()


def pull(client: TestClient, sub: str, agency: str, expect: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = ""

    def pulled_enough() -> bool:
        nonlocal cursor
        body = client.get(f"/v1/subscriptions/{sub}/events",
                          params={"after": cursor, "wait": 1}, headers=auth(agency)).json()
        events.extend(body["events"])
        cursor = body["next"]
        return len(events) >= expect

    eventually(pulled_enough, timeout=10, interval=0,
               message=lambda: f"{sub}: pulled {len(events)} of {expect} events")
    return events


def test_invalid_event_is_refused_naming_every_field_and_nothing_is_appended(api):
    client, runtime = api
    event = a_birth()
    event["mother"]["birth_date"] = "16/05/1995"
    event["child"]["sex"] = "GIRL"
    del event["county_fips"]
    response = client.post("/v1/events/birth", json=event, headers=auth("county-general"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/invalid-event"
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"mother.birth_date", "child.sex", "county_fips"}
    assert "16/05/1995" not in response.text and "GIRL" not in response.text
    assert sum(runtime.log.end_offset("events.birth", p) for p in range(4)) == 0


def test_batch_is_all_or_none(api):
    client, runtime = api
    good, bad = a_birth(), a_birth()
    bad["child"]["birth_weight_grams"] = "heavy"
    response = client.post("/v1/events/birth:batch", json={"events": [good, bad]},
                           headers=auth("county-general"))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["events[1].child.birth_weight_grams"]
    assert sum(runtime.log.end_offset("events.birth", p) for p in range(4)) == 0

    response = client.post("/v1/events/birth:batch", json={"events": [good, a_birth()]},
                           headers=auth("county-general"))
    assert response.status_code == 202
    assert len(response.json()["accepted"]) == 2


def test_republishing_an_event_id_is_idempotent(api):
    client, runtime = api
    event = a_birth()
    first = client.post("/v1/events/birth", json=event, headers=auth("county-general")).json()
    again = client.post("/v1/events/birth", json=event, headers=auth("county-general")).json()
    assert again["duplicate"] is True and first["duplicate"] is False
    assert (again["partition"], again["offset"]) == (first["partition"], first["offset"])
    assert sum(runtime.log.end_offset("events.birth", p) for p in range(4)) == 1
    (stored,) = runtime.log.read("events.birth", first["partition"], first["offset"], 1)
    # Keyed by the subject's pseudonym (per-subject order), never the identifier itself.
    assert stored.key is not None and stored.key.startswith(b"sp_")
    assert event["subject_id"].encode() not in stored.key


@pytest.mark.parametrize(
    ("agency", "path", "status", "slug"),
    [
        (None, "/v1/events/birth", 401, "unauthenticated"),
        ("hv-nfp", "/v1/events/birth", 403, "forbidden"),          # hv-nfp does not publish births
        ("auditor", "/v1/events/birth", 403, "forbidden"),
        ("county-general", "/v1/events/parking_ticket", 404, "not-found"),
    ],
)
def test_publish_refusals_are_problems_and_audited(api, agency, path, status, slug):
    client, runtime = api
    response = client.post(path, json=a_birth(), headers=auth(agency) if agency else {})
    assert response.status_code == status
    assert response.json()["type"] == f"/problems/{slug}"
    if status == 401 or agency == "auditor":
        refused = list(runtime.audit.iter_records(AuditFilter(kind="access_refused")))
        assert refused and refused[-1].detail["status"] == status
    elif status == 403:
        # Whatever the channel, the publisher refuses an event type the agency may not
        # publish, under one record type.
        refused = list(runtime.audit.iter_records(AuditFilter(kind="publish_refused")))
        assert refused and dict(refused[-1].detail) == {
            "event_type": "birth", "reason": "not_permitted", "fields": []}
        assert refused[-1].source == "hv-nfp"
        assert list(runtime.audit.iter_records(AuditFilter(kind="access_refused"))) == []


def test_size_cap_applies_before_parsing(api):
    client, runtime = api
    cap = runtime.settings.api.max_body_bytes
    response = client.post("/v1/events/birth", content=b"{" + b" " * cap + b"}",
                           headers={**auth("county-general"), "content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["type"] == "/problems/payload-too-large"


def test_malformed_json_and_wrong_media_type(api):
    client, _ = api
    headers = {**auth("county-general"), "content-type": "application/json"}
    assert client.post("/v1/events/birth", content=b"{nope", headers=headers
                       ).json()["type"] == "/problems/malformed-json"
    response = client.post("/v1/events/birth", content=b"x",
                           headers={**auth("county-general"), "content-type": "text/csv"})
    assert response.status_code == 415


def test_avro_in_and_avro_out(api):
    client, runtime = api
    registered = runtime.event_types.latest("birth")
    event = a_birth()
    from schemas.jsonform import record_from_json

    payload = runtime.codec.encode(registered.schema_id,
                                   record_from_json(registered.schema.schema, event))
    response = client.post("/v1/events/birth", content=payload, headers={
        **auth("county-general"), "content-type": "application/vnd.handoff.avro"})
    assert response.status_code == 202, response.text
    garbage = client.post("/v1/events/birth", content=b"\x00\x00\x00\x00\x01garbage",
                          headers={**auth("county-general"),
                                   "content-type": "application/vnd.handoff.avro"})
    assert garbage.status_code == 400
    assert garbage.json()["type"] == "/problems/undecodable-payload"

    pull(client, "eval-births", "state-evaluation", 1)
    response = client.get("/v1/subscriptions/eval-births/events", headers={
        **auth("state-evaluation"), "accept": "application/vnd.handoff.avro"})
    assert response.status_code == 200
    (envelope,) = list(fastavro.reader(io.BytesIO(response.content)))
    assert envelope["event_id"] == event["event_id"]
    schema = client.get(f"/v1/registry/schemas/ids/{envelope['schema_id']}",
                        headers=auth("state-evaluation")).json()["schema"]
    view = fastavro.schemaless_reader(io.BytesIO(envelope["data"][5:]),
                                      fastavro.parse_schema(json.loads(schema)))
    assert view["mother"]["zip"] == event["mother"]["zip"][:3]
    assert "first_name" not in view["mother"]


def test_stream_resumes_after_last_event_id(api):
    client, _ = api
    for _ in range(3):
        client.post("/v1/events/birth", json=a_birth(), headers=auth("county-general"))
    pulled = pull(client, "eval-births", "state-evaluation", 3)

    def first_event(headers: dict[str, str]) -> dict[str, str]:
        with client.stream("GET", "/v1/subscriptions/eval-births/stream",
                           headers={**auth("state-evaluation"), **headers}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            for line in response.iter_lines():
                if line.startswith(("id:", "event:", "data:")):
                    name, _, value = line.partition(": ")
                    fields[name.rstrip(":")] = value
                elif not line and "data" in fields:
                    return fields
        raise AssertionError("stream ended")

    first = first_event({})
    assert json.loads(first["data"])["event_id"] == pulled[0]["event_id"]
    resumed = first_event({"last-event-id": first["id"]})
    assert json.loads(resumed["data"])["event_id"] == pulled[1]["event_id"]


def test_bad_cursor_and_foreign_subscription(api):
    client, _ = api
    response = client.get("/v1/subscriptions/eval-births/events", params={"after": "x.y"},
                          headers=auth("state-evaluation"))
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/invalid-cursor"
    assert client.get("/v1/subscriptions/nope/events", headers=auth("hv-nfp")
                      ).status_code == 404


def test_explain_uses_only_the_consents_given(api):
    client, _ = api
    birth = story.STORY[1].build(datetime.now(UTC))
    consent = story.STORY[0].build(datetime.now(UTC))
    body = {"event_type": "birth", "source": "county-general", "subscription": "hv-births",
            "event": birth}
    without = client.post("/v1/explain", json=body, headers=auth("hv-nfp")).json()
    with_consent = client.post("/v1/explain", json={**body, "consents": [consent]},
                               headers=auth("hv-nfp")).json()
    assert "child.birth_weight_grams" in without["decision"]["withheld"]
    assert with_consent["view"]["child"]["birth_weight_grams"] == 2410
    assert client.post("/v1/explain", json=body, headers=auth("medicaid")).status_code == 403


def test_registry_is_confluent_shaped_and_guards_compatibility(api):
    client, _ = api
    subjects = client.get("/v1/registry/subjects", headers=auth("hv-nfp")).json()
    assert "events.birth-value" in subjects
    latest = client.get("/v1/registry/subjects/events.birth-value/versions/latest",
                        headers=auth("hv-nfp")).json()
    schema = json.loads(latest["schema"])
    schema["fields"].append({"name": "apgar_10min", "type": "int"})   # no default
    check = client.post("/v1/registry/compatibility/subjects/events.birth-value/versions/latest",
                        json={"schema": json.dumps(schema)}, headers=auth("admin")).json()
    assert check["is_compatible"] is False
    response = client.post("/v1/registry/subjects/events.birth-value/versions",
                           json={"schema": json.dumps(schema)}, headers=auth("admin"))
    assert response.status_code == 409
    schema["fields"][-1] = {"name": "apgar_10min", "type": ["null", "int"], "default": None,
                            "tags": ["health"]}
    ok = client.post("/v1/registry/subjects/events.birth-value/versions",
                     json={"schema": json.dumps(schema)}, headers=auth("admin"))
    assert ok.status_code == 200 and ok.json()["id"] != latest["id"]
    assert client.get("/v1/registry/subjects/events.birth-value/versions",
                      headers=auth("hv-nfp")).json() == [1, 2]
    assert client.post("/v1/registry/subjects/events.birth-value/versions",
                       json={"schema": json.dumps(schema)}, headers=auth("hv-nfp")
                       ).status_code == 403


def test_health_readiness_and_metrics(api):
    client, _ = api
    assert client.get("/healthz").json() == {"status": "ok"}
    eventually(lambda: client.get("/readyz").status_code == 200, timeout=5,
               message="the broker never became ready")
    birth = a_birth()
    client.post("/v1/events/birth", json=birth, headers=auth("county-general"))
    pull(client, "eval-births", "state-evaluation", 1)

    def latency_observed() -> str | None:
        text = client.get("/metrics").text
        return text if "handoff_delivery_latency_seconds_bucket" in text else None

    text = eventually(latency_observed, timeout=5, message="delivery latency never observed")
    assert 'handoff_events_ingested_total{event_type="birth",source="county-general"} 1.0' in text
    assert 'handoff_decisions_total{outcome="permit",subscription="eval-births"} 1.0' in text
    assert birth["subject_id"] not in text and birth["mother"]["last_name"] not in text
