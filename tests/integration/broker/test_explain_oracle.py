"""`POST /v1/explain` is no pseudonym oracle, and every call is audited with its caller
(issue 10, item 1).

The state evaluation agency receives county-general's births with the subject and the
child pseudonymised under its own key. Explaining a birth for a chosen subject must
never give back the pseudonym its real delivery carries, or explain would let it guess
identifiers until one matches and so re-identify its whole feed.
"""

from __future__ import annotations

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
EVALUATOR = {"Authorization": f"Bearer {KEYS['state-evaluation']}"}
SUBJECT = "MPI-0042117"


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[tuple[TestClient, Broker]]:
    data = tmp_path_factory.mktemp("explain") / "data"
    with demo_api(data) as running:
        yield running


def a_birth() -> dict[str, Any]:
    return demo_birth(subject_id=SUBJECT)


def delivered(client: TestClient) -> dict[str, Any]:
    def first() -> dict[str, Any] | None:
        events = client.get("/v1/subscriptions/eval-births/events",
                            params={"wait": 1}, headers=EVALUATOR).json()["events"]
        return events[0] if events else None

    found: dict[str, Any] = eventually(first, timeout=20, interval=0,
                                       message="eval-births received nothing")
    return found


def explain(client: TestClient, event: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/explain", headers=EVALUATOR, json={
        "event_type": "birth", "source": "county-general", "subscription": "eval-births",
        "event": event})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_explain_never_reproduces_the_pseudonyms_a_delivery_carries(api):
    client, _ = api
    event = a_birth()
    accepted = client.post("/v1/events/birth", json=event,
                           headers={"Authorization": f"Bearer {KEYS['county-general']}"})
    assert accepted.status_code == 202
    real = delivered(client)["data"]
    assert real["subject_id"].startswith("p_")          # pseudonymised for this recipient

    first, second = explain(client, event), explain(client, event)
    assert first["decision"]["outcome"] == "permit"
    shown = first["view"]
    assert shown["subject_id"].startswith("p_")
    assert shown["subject_id"] != real["subject_id"]
    assert shown["child"]["child_id"] != real["child"]["child_id"]
    # Not a second fixed key either: two calls for one subject share nothing.
    assert second["view"]["subject_id"] != shown["subject_id"]
    assert "match no delivery" in first["pseudonyms"]
    # What needs no secret is shown as a delivery would carry it.
    assert shown["mother"]["zip"] == real["mother"]["zip"]


def test_every_explain_call_is_audited_with_its_caller_never_the_event(api):
    client, runtime = api
    before = len(list(runtime.audit.iter_records(AuditFilter(kind="explain"))))
    explain(client, a_birth())
    explain(client, a_birth())
    invalid = client.post("/v1/explain", headers=EVALUATOR, json={
        "event_type": "birth", "source": "county-general", "subscription": "eval-births",
        "event": {"subject_id": SUBJECT}})
    assert invalid.status_code == 422
    records = list(runtime.audit.iter_records(AuditFilter(kind="explain")))[before:]
    assert [r.outcome for r in records] == ["permit", "permit", "invalid"]
    for record in records:
        assert record.actor == "demo-state-evaluation"
        assert record.subscription == "eval-births"
        assert record.detail["requested_by"] == "state-evaluation"
        assert record.detail["event_type"] == "birth"
        assert record.subject is None and record.event_id is None
        assert SUBJECT not in repr(record.to_dict())
