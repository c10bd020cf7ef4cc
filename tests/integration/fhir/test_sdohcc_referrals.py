"""SDOH Clinical Care referrals through the FHIR R4 source and back out as FHIR: the hotline
posts a ServiceRequest + Task, home visiting posts Task updates, and the hotline's webhook
receives each status it may see as an SDOHCC Task (`delivery.format: fhir-task`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from fhir.resources.R4B.task import Task

from broker.api.app import create_app
from broker.bootstrap import build_broker
from broker.config import load_settings
from connectors.webhook_signing import WebhookSecret
from referrals.fhir_codes import (
    AGENCY_SYSTEM,
    BUSINESS_STATUS_SYSTEM,
    REFERRAL_SYSTEM,
    SERVICE_SYSTEM,
    SUBJECT_SYSTEM,
    TASK_PROFILE,
)
from tests.e2e.harness import DEMO, demo_keys
from tests.integration.webhooks.receiver_server import WebhookReceiver

KEYS = demo_keys()
FHIR = {"Content-Type": "application/fhir+json"}
SUB = "cw-referral-status"


def auth(agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[agency]}", **FHIR}


def agency(name: str) -> dict[str, Any]:
    return {"identifier": {"system": AGENCY_SYSTEM, "value": name}}


def referral_bundle(referral_id: str) -> dict[str, Any]:
    """What an SDOHCC-conformant system sends to make a referral."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "keisha",
                      "identifier": [{"system": SUBJECT_SYSTEM, "value": "MPI-0050377"}],
                      "name": [{"given": ["Keisha"], "family": "Brown"}],
                      "telecom": [{"system": "phone", "value": "608-555-0117"}]}},
        {"resource": {"resourceType": "ServiceRequest", "id": "sr-1", "status": "active",
                      "intent": "order",
                      "identifier": [{"system": f"{REFERRAL_SYSTEM}/cw-hotline",
                                      "value": referral_id}],
                      "code": {"coding": [{"system": SERVICE_SYSTEM,
                                           "code": "home-visiting"}]},
                      "subject": {"reference": "Patient/keisha"},
                      "authoredOn": "2026-11-09T10:05:00Z"}},
        {"resource": {"resourceType": "Task", "id": "task-1",
                      "meta": {"profile": [TASK_PROFILE]}, "status": "requested",
                      "intent": "order", "priority": "asap",
                      "focus": {"reference": "ServiceRequest/sr-1"},
                      "for": {"reference": "Patient/keisha"},
                      "requester": agency("cw-hotline"), "owner": agency("hv-nfp"),
                      "authoredOn": "2026-11-09T10:05:00Z"}},
    ]}


def task_update(referral_id: str, version: int, status: str, at: str,
                business: str | None = None) -> dict[str, Any]:
    """The receiver's Task after one step, as it posts it."""
    task: dict[str, Any] = {
        "resourceType": "Task", "id": "task-1",
        "meta": {"versionId": str(version), "profile": [TASK_PROFILE]},
        "status": status, "intent": "order",
        "focus": {"identifier": {"system": f"{REFERRAL_SYSTEM}/cw-hotline",
                                 "value": referral_id}},
        "for": {"identifier": {"system": SUBJECT_SYSTEM, "value": "MPI-0050377"}},
        "requester": agency("cw-hotline"), "owner": agency("hv-nfp"), "lastModified": at}
    if business:
        task["businessStatus"] = {"coding": [{"system": BUSINESS_STATUS_SYSTEM,
                                              "code": business}]}
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": task}]}


@pytest.fixture
def secret() -> str:
    return WebhookSecret.generate().encoded()


@pytest.fixture
def receiver(secret: str) -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(secrets=[secret]).start()
    yield server
    server.stop()


@pytest.fixture
def api(tmp_path: Path, receiver: WebhookReceiver, secret: str) -> Iterator[TestClient]:
    policy = tmp_path / "policy"
    shutil.copytree(DEMO / "policy", policy)
    path = policy / "subscriptions.yaml"
    doc = yaml.safe_load(path.read_text())
    for entry in doc["subscriptions"]:
        if entry["id"] == SUB:
            entry["delivery"] = {"mode": "webhook", "url": receiver.url,
                                 "format": "fhir-task"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(yaml.safe_dump({"connectors": [
        {"name": "hotline-fhir", "type": "fhir_r4", "agency": "cw-hotline"},
        {"name": "nfp-fhir", "type": "fhir_r4", "agency": "hv-nfp"}]}))
    settings = load_settings(policy_dir=policy, data_dir=tmp_path / "data",
                             keys_file=DEMO / "keys.yaml", connectors_file=connectors,
                             webhooks={"secrets": {SUB: [secret]}, "jitter": 0})
    broker = build_broker(settings)
    broker.start()
    try:
        with TestClient(create_app(broker.api)) as client:
            yield client
    finally:
        broker.stop()


@pytest.mark.slow
def test_a_referral_made_and_worked_in_fhir_reaches_the_referrer_as_fhir_tasks(
        api: TestClient, receiver: WebhookReceiver) -> None:
    made = api.post("/v1/connectors/fhir/hotline-fhir/Bundle",
                    json=referral_bundle("HL-FHIR-1"), headers=auth("cw-hotline"))
    assert made.status_code == 202, made.text
    assert [e["event_type"] for e in made.json()["events"]] == ["referral"]
    assert made.json()["events"][0]["resource"] == "Task/task-1"

    for version, status, at, business in (
            (2, "accepted", "2026-11-10T09:30:00-06:00", None),
            (3, "in-progress", "2026-11-10T16:00:00-06:00", "contact-attempted"),
            (4, "in-progress", "2026-11-11T08:00:00-06:00", "contacted")):
        worked = api.post("/v1/connectors/fhir/nfp-fhir/Bundle", headers=auth("hv-nfp"),
                          json=task_update("HL-FHIR-1", version, status, at, business))
        assert worked.status_code == 202, worked.text
        assert worked.json()["events"][0]["event_type"] == "referral_status"

    # An update the referral's life has not got is refused through FHIR too.
    back = api.post("/v1/connectors/fhir/nfp-fhir/Bundle", headers=auth("hv-nfp"),
                    json=task_update("HL-FHIR-1", 5, "received", "2026-11-12T08:00:00Z"))
    assert back.status_code == 422, back.text
    assert "a referral that is IN_PROGRESS cannot become RECEIVED" in back.json()["detail"]

    # The unanswered call stays with NFP (feedback terms); the rest arrive as Tasks.
    assert receiver.wait_for(lambda r: len(r.delivered()) >= 2)
    assert not receiver.wait_for(lambda r: len(r.delivered()) > 2, timeout=1.0)
    requests = [r for r in receiver.requests if r.payload is not None]
    assert {r.headers["content-type"] for r in requests} == {"application/fhir+json"}
    tasks = [Task.model_validate(r.payload) for r in requests]
    assert [t.status for t in tasks] == ["accepted", "in-progress"]
    assert tasks[1].businessStatus is not None
    assert tasks[1].businessStatus.coding[0].code == "contacted"
    assert len({t.id for t in tasks}) == 1              # one Task per referral
    assert tasks[0].focus.identifier.value == "HL-FHIR-1"
    assert tasks[0].owner.identifier.value == "hv-nfp"
    assert tasks[0].meta.profile == [TASK_PROFILE]


def test_a_task_update_for_a_referral_nobody_made_is_refused(api: TestClient) -> None:
    refused = api.post("/v1/connectors/fhir/nfp-fhir/Bundle", headers=auth("hv-nfp"),
                       json=task_update("HL-NOBODY", 2, "accepted", "2026-11-10T09:30:00Z"))
    assert refused.status_code == 422
    assert refused.json()["type"] == "/problems/referral-refused"
    assert "HL-NOBODY" not in refused.text
