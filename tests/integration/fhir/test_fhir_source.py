"""The FHIR R4 source over HTTP: bundles validated with fhir.resources, mapped to birth
events and published as the connector's agency; invalid ones refused naming the resource
and element."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import yaml
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.bootstrap import build_broker
from broker.config import load_settings
from tests.e2e.harness import DEMO, demo_keys
from tests.integration.fhir.bundles import birth_bundle

KEYS = demo_keys()
URL = "/v1/connectors/fhir/cgh-fhir/Bundle"
FHIR = {"Content-Type": "application/fhir+json"}


def auth(agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[agency]}", **FHIR}


@pytest.fixture
def api(tmp_path) -> Iterator[TestClient]:
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(yaml.safe_dump({"connectors": [
        {"name": "cgh-fhir", "type": "fhir_r4", "agency": "county-general",
         "county_fips": "55025"}]}))
    settings = load_settings(policy_dir=DEMO / "policy", data_dir=tmp_path / "data",
                             keys_file=DEMO / "keys.yaml", connectors_file=connectors)
    runtime = build_broker(settings)
    runtime.start()
    try:
        with TestClient(create_app(runtime.api)) as client:
            yield client
    finally:
        runtime.stop()


def pull(client: TestClient, sub: str, agency: str) -> list[dict]:
    for _ in range(50):
        body = client.get(f"/v1/subscriptions/{sub}/events", params={"wait": 1},
                          headers={"Authorization": f"Bearer {KEYS[agency]}"}).json()
        if body["events"]:
            return body["events"]
    return []


def test_a_birth_bundle_becomes_a_birth_event_that_home_visiting_receives(api):
    response = api.post(URL, json=birth_bundle(), headers=auth("county-general"))
    assert response.status_code == 202, response.text
    (published,) = response.json()["events"]
    assert published["event_type"] == "birth" and published["resource"] == "Encounter/enc-1"
    (delivered,) = pull(api, "hv-births", "hv-nfp")
    assert delivered["event_id"] == published["event_id"]
    assert delivered["source"] == "county-general"
    data = delivered["data"]
    assert data["mother"]["first_name"] == "Grace" and data["mother"]["phone"] == "608-555-0199"
    assert data["child"]["first_name"] == "Ada" and data["child"]["birth_date"] == "2026-11-06"
    assert data["mother"].get("ssn") is None and "mother.ssn" in delivered["withheld"]
    assert data["occurred_at"] == "2026-11-06T09:41:00.000Z"


def test_posting_the_same_bundle_again_publishes_nothing_twice(api):
    first = api.post(URL, json=birth_bundle(), headers=auth("county-general")).json()
    again = api.post(URL, json=birth_bundle(), headers=auth("county-general")).json()
    assert first["events"][0]["event_id"] == again["events"][0]["event_id"]
    assert again["events"][0]["duplicate"] is True


def test_invalid_fhir_is_refused_naming_resource_and_element_without_the_value(api):
    bundle = birth_bundle()
    bundle["entry"][0]["resource"]["birthDate"] = "2026-13-45"
    bundle["entry"][2]["resource"]["status"] = 17
    response = api.post(URL, json=bundle, headers=auth("county-general"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/invalid-fhir-bundle"
    where = {(e["resource"], e["element"]) for e in problem["errors"]}
    assert ("Patient/newborn-1", "birthDate") in where
    assert ("Encounter/enc-1", "status") in where
    assert "2026-13-45" not in response.text


def test_fhir_that_lacks_what_a_birth_needs_is_refused_and_nothing_is_published(api):
    bundle = birth_bundle()
    bundle["entry"] = [e for e in bundle["entry"]
                       if e["resource"]["resourceType"] != "RelatedPerson"]
    response = api.post(URL, json=bundle, headers=auth("county-general"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["resource"] == "Patient/newborn-1"
    missing_weight = copy.deepcopy(birth_bundle())
    missing_weight["entry"] = [e for e in missing_weight["entry"]
                               if e["resource"].get("id") != "bw-1"]
    response = api.post(URL, json=missing_weight, headers=auth("county-general"))
    assert response.status_code == 422
    assert "child.birth_weight_grams" in response.text
    assert api.get("/v1/subscriptions/hv-births/events", params={"wait": 1}, headers={
        "Authorization": f"Bearer {KEYS['hv-nfp']}"}).json()["events"] == []


def test_only_the_connectors_agency_may_post_and_only_to_a_fhir_connector(api):
    other = api.post(URL, json=birth_bundle(), headers=auth("vital-records"))
    assert other.status_code == 403
    unknown = api.post("/v1/connectors/fhir/nope/Bundle", json=birth_bundle(),
                       headers=auth("county-general"))
    assert unknown.status_code == 404
    not_fhir = api.post(URL, content=b"<Bundle/>", headers={
        **auth("county-general"), "Content-Type": "application/fhir+xml"})
    assert not_fhir.status_code == 415
