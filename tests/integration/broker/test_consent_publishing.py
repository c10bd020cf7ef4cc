"""Who records and revokes consents, checked where consents are published, over the HTTP
API of a real broker (embedded log, audit store, router thread); and ISO date strings
refused at publish.

Attacks, one row each: another agency's consent with a colliding id, a recipient
self-granting a consent to unlock a Part 2 program's records, a revocation by a
stranger, a consent naming a discloser its recorder may not name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.audit.store import AuditFilter
from broker.bootstrap import Broker, build_broker
from broker.config import load_settings
from broker.demo import story
from schemas.jsonform import record_from_json
from schemas.wire import encode_wire
from tests.e2e.harness import DEMO, demo_keys

# A broker runs in the test's process (seconds a file): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

KEYS = demo_keys()
JOLENE, ANA = story.JOLENE, story.ANA


def auth(agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[agency]}"}


@pytest.fixture
def api(tmp_path) -> Iterator[tuple[TestClient, Broker]]:
    settings = load_settings(policy_dir=DEMO / "policy", data_dir=tmp_path / "data",
                             keys_file=DEMO / "keys.yaml")
    broker = build_broker(settings)
    broker.start()
    try:
        with TestClient(create_app(broker.api)) as client:
            yield client, broker
    finally:
        broker.stop()


def consent(subject: str, consent_id: str, action: str = "GRANT", *,
            recipients: tuple[str, ...] = ("hv-nfp",), categories: tuple[str, ...] = ("*",),
            disclosers: tuple[str, ...] = ()) -> dict[str, Any]:
    event = story.consent(subject, consent_id, action, "Jolene Lindqvist", list(recipients),
                          ["care_coordination"], list(categories))(datetime.now(UTC))
    event["disclosers"] = list(disclosers)
    return event


def consent_changes(runtime: Broker) -> list[Any]:
    return list(runtime.audit.iter_records(AuditFilter(kind="consent_change")))


def consents_on_the_log(runtime: Broker) -> int:
    topic = "events.consent"
    return sum(runtime.log.end_offset(topic, p) for p in range(runtime.log.partitions(topic)))


def health_facts_reach_home_visiting(client: TestClient, expect: int) -> list[bool]:
    """Whether each hv-births delivery so far carried the baby's birth weight."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(events) < expect and time.monotonic() < deadline:
        events = client.get("/v1/subscriptions/hv-births/events", params={"wait": 1},
                            headers=auth("hv-nfp")).json()["events"]
    assert len(events) == expect
    return [e["data"]["child"]["birth_weight_grams"] is not None for e in events]


REFUSALS = [
    ("a recipient self-grants a consent to unlock a Part 2 program's records", "hv-nfp",
     consent(ANA, "CONSENT-HV-SELF", recipients=("hv-nfp",),
             disclosers=("recovery-clinic",)),
     "discloser_not_permitted", "disclosers"),
    ("a consent naming a discloser its recorder may not name", "county-general",
     consent(JOLENE, "CONSENT-CG-MA", disclosers=("medicaid",)),
     "discloser_not_permitted", "disclosers"),
    ("a revocation by a stranger", "hv-nfp", consent(JOLENE, "CONSENT-HV-0311", "REVOKE"),
     "no_such_consent", "consent_id"),
]


@pytest.mark.parametrize(("name", "agency", "event", "code", "field"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_consent_attacks_are_refused_audited_and_leave_nothing_behind(
        api, name: str, agency: str, event: dict[str, Any], code: str, field: str) -> None:
    client, runtime = api
    granted = client.post("/v1/events/consent", json=consent(JOLENE, "CONSENT-HV-0311"),
                          headers=auth("county-general"))
    assert granted.status_code == 202
    before = consents_on_the_log(runtime)

    response = client.post("/v1/events/consent", json=event, headers=auth(agency))

    assert response.status_code == 403, response.text
    problem = response.json()
    assert problem["type"] == "/problems/consent-refused"
    assert [e["field"] for e in problem["errors"]] == [field]
    assert "Jolene" not in response.text and event["subject_id"] not in response.text
    assert consents_on_the_log(runtime) == before
    refused = [r for r in consent_changes(runtime) if r.outcome == "refused"]
    assert [(r.source, r.event_id, r.detail["code"]) for r in refused] == [
        (agency, event["event_id"], code)]
    assert refused[0].subject.startswith("sp_")
    # The family's own consent is untouched: a birth still carries health facts.
    assert client.post("/v1/events/birth", json=story.STORY[1].build(datetime.now(UTC)),
                       headers=auth("county-general")).status_code == 202
    assert health_facts_reach_home_visiting(client, expect=1) == [True]


def test_another_agencys_consent_with_a_colliding_id_replaces_nothing(api) -> None:
    client, runtime = api
    first = consent(JOLENE, "CONSENT-1", categories=("health", "benefits"))
    # The hotline records its own consent for Jolene under the same id, for its own data.
    colliding = consent(JOLENE, "CONSENT-1", recipients=("medicaid",))
    assert client.post("/v1/events/consent", json=first,
                       headers=auth("county-general")).status_code == 202
    assert client.post("/v1/events/consent", json=colliding,
                       headers=auth("cw-hotline")).status_code == 202
    runtime.consents.catch_up()
    held = runtime.consents.view.consents_for(JOLENE)
    assert sorted((c.recorded_by, c.consent_id, sorted(c.recipients)) for c in held) == [
        ("county-general", "CONSENT-1", ["hv-nfp"]),
        ("cw-hotline", "CONSENT-1", ["medicaid"])]
    assert client.post("/v1/events/birth", json=story.STORY[1].build(datetime.now(UTC)),
                       headers=auth("county-general")).status_code == 202
    assert health_facts_reach_home_visiting(client, expect=1) == [True]


def test_grants_and_revocations_are_audited_once_durable(api) -> None:
    client, runtime = api
    grant = consent(JOLENE, "CONSENT-HV-0311", categories=("health",))
    revoke = consent(JOLENE, "CONSENT-HV-0311", "REVOKE")
    assert client.post("/v1/events/consent", json=grant,
                       headers=auth("county-general")).status_code == 202
    # Resubmitting an accepted event records nothing new.
    assert client.post("/v1/events/consent", json=grant,
                       headers=auth("county-general")).status_code == 202
    assert client.post("/v1/events/consent", json=revoke,
                       headers=auth("county-general")).status_code == 202
    records = consent_changes(runtime)
    assert [(r.outcome, r.event_id, r.source) for r in records] == [
        ("granted", grant["event_id"], "county-general"),
        ("revoked", revoke["event_id"], "county-general")]
    detail = records[0].detail
    assert (detail["consent_id"], detail["recorded_by"], detail["code"]) == (
        "CONSENT-HV-0311", "county-general", "granted")
    assert (detail["recipients"], detail["categories"], detail["disclosers"]) == (
        ["hv-nfp"], ["health"], [])
    text = json.dumps([dict(r.detail) for r in records]) + str(records)
    assert JOLENE not in text and "Lindqvist" not in text


def test_a_grant_and_its_revocation_in_one_batch_are_both_accepted(api) -> None:
    client, runtime = api
    events = [consent(JOLENE, "CONSENT-B"), consent(JOLENE, "CONSENT-B", "REVOKE")]
    response = client.post("/v1/events/consent:batch", json={"events": events},
                           headers=auth("county-general"))
    assert response.status_code == 202, response.text
    assert [r.outcome for r in consent_changes(runtime)] == ["granted", "revoked"]


def test_a_batch_with_one_refused_consent_is_refused_whole(api) -> None:
    client, runtime = api
    events = [consent(JOLENE, "CONSENT-OK", disclosers=("county-general",)),
              consent(ANA, "CONSENT-NO", disclosers=("recovery-clinic",))]
    response = client.post("/v1/events/consent:batch", json={"events": events},
                           headers=auth("hv-nfp"))
    assert response.status_code == 403
    assert [e["field"] for e in response.json()["errors"]] == ["events[1].disclosers"]
    assert consents_on_the_log(runtime) == 0
    assert [(r.outcome, r.event_id) for r in consent_changes(runtime)] == [
        ("refused", events[1]["event_id"])]


# -- ISO date strings ------------------------------------------------------------------


def register_enrollment_with_a_date_string(client: TestClient) -> tuple[int, dict[str, Any]]:
    latest = client.get("/v1/registry/subjects/events.enrollment-value/versions/latest",
                        headers=auth("hv-nfp")).json()
    schema = json.loads(latest["schema"])
    schema["fields"].append({"name": "visit_date", "type": ["null", "string"],
                             "format": "date", "default": None})
    response = client.post("/v1/registry/subjects/events.enrollment-value/versions",
                           json={"schema": json.dumps(schema)}, headers=auth("admin"))
    assert response.status_code == 200, response.text
    return int(response.json()["id"]), schema


def an_enrollment(visit_date: str | None) -> dict[str, Any]:
    event = story.STORY[4].build(datetime.now(UTC))
    event["visit_date"] = visit_date
    return event


@pytest.mark.parametrize(("visit_date", "status"), [
    ("2026-03-04", 202),
    (None, 202),
    ("03/04/2026", 422),
    ("2026-02-30", 422),
])
def test_a_date_string_that_is_not_an_iso_date_is_refused_naming_the_field(
        api, visit_date: str | None, status: int) -> None:
    client, _ = api
    register_enrollment_with_a_date_string(client)
    response = client.post("/v1/events/enrollment", json=an_enrollment(visit_date),
                           headers=auth("recovery-clinic"))
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["errors"] == [
            {"field": "visit_date", "message": "expected an ISO 8601 date (YYYY-MM-DD)"}]
        assert str(visit_date) not in response.text


def test_an_avro_payload_with_a_bad_date_string_is_refused_too(api) -> None:
    client, _ = api
    schema_id, schema = register_enrollment_with_a_date_string(client)
    good = record_from_json(schema, an_enrollment("2026-03-04"))
    bad = {**good, "visit_date": "4 March"}
    parsed = fastavro.parse_schema(schema)
    headers = {**auth("recovery-clinic"), "content-type": "application/vnd.handoff.avro"}
    ok = client.post("/v1/events/enrollment", content=encode_wire(parsed, schema_id, good),
                     headers=headers)
    refused = client.post("/v1/events/enrollment",
                          content=encode_wire(parsed, schema_id, bad), headers=headers)
    assert ok.status_code == 202, ok.text
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["visit_date"]


@pytest.mark.parametrize(("recorded_by", "released"), [
    (None, False),            # taken as recorded by the source: it names hv-nfp's data
    ("hv-nfp", True),         # county-general relies on hv-nfp's authorizations
    ("recovery-clinic", False),  # but not on a treatment program's
])
def test_explain_takes_consents_as_recorded_by_the_agency_named(
        api, recorded_by: str | None, released: bool) -> None:
    client, _ = api
    authorization = consent(JOLENE, "AUTH-1", disclosers=("hv-nfp",) if recorded_by is None
                            else ("county-general",))
    body: dict[str, Any] = {
        "event_type": "birth", "source": "county-general", "subscription": "hv-births",
        "event": story.STORY[1].build(datetime.now(UTC)), "consents": [authorization]}
    if recorded_by is not None:
        body["consents_recorded_by"] = recorded_by
    answer = client.post("/v1/explain", json=body, headers=auth("hv-nfp")).json()
    assert ("child.birth_weight_grams" in answer["decision"]["released"]) is released
