"""The publish routes answered by `broker.api.publish_fast` give what FastAPI's routing of
the same endpoints gives: the same status, problem, headers and audit, for every way a
publish can be refused and for one that is accepted, single and batch.

Two apps over one broker: the one `handoff serve` runs (the lean dispatch) and one built
with `lean_publish=False`. Each request goes to both; their answers are compared with the
per-request parts (request id, offsets, event ids the broker made) set aside.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.audit.store import AuditFilter
from broker.bootstrap import Broker, build_broker
from broker.config import load_settings
from tests.demo_broker import demo_birth
from tests.e2e.harness import DEMO, demo_keys

pytestmark = pytest.mark.slow

KEYS = demo_keys()
PUBLISHER = {"Authorization": f"Bearer {KEYS['county-general']}"}
VOLATILE = ("x-request-id", "date", "content-length")


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> Iterator[tuple[TestClient, TestClient, Broker]]:
    data = tmp_path_factory.mktemp("lean") / "data"
    settings = load_settings(policy_dir=DEMO / "policy", data_dir=data,
                             keys_file=DEMO / "keys.yaml")
    broker = build_broker(settings)
    broker.start()
    try:
        with TestClient(create_app(broker.api)) as lean, \
                TestClient(create_app(broker.api, lean_publish=False)) as plain:
            yield lean, plain, broker
    finally:
        broker.stop()


def answer(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE}
    body: Any = response.json() if response.content else None
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("offset", "partition")}
    return response.status_code, headers, body


def both(apps, path: str, **request: Any) -> tuple[Any, Any]:
    lean, plain, _ = apps
    return answer(lean.post(path, **request)), answer(plain.post(path, **request))


def birth_body(**changes: Any) -> bytes:
    return json.dumps(demo_birth(event_id=str(uuid.uuid4()), **changes)).encode()


REFUSALS = {
    "no key": dict(path="/v1/events/birth", content=b"{}"),
    "unknown key": dict(path="/v1/events/birth", content=b"{}",
                        headers={"Authorization": "Bearer hk_nobody"}),
    "key without the publish role": dict(
        path="/v1/events/birth", content=b"{}",
        headers={"Authorization": f"Bearer {KEYS['auditor']}"}),
    "type the agency may not publish": dict(
        path="/v1/events/referral", content=b"{}", headers=PUBLISHER),
    "unknown type": dict(path="/v1/events/no_such_type", content=b"{}", headers=PUBLISHER),
    "broker's own type": dict(path="/v1/events/handoff_overdue", content=b"{}",
                              headers=PUBLISHER),
    "wrong content type": dict(path="/v1/events/birth", content=b"{}",
                               headers={**PUBLISHER, "Content-Type": "text/plain"}),
    "malformed JSON": dict(path="/v1/events/birth", content=b"{\"mother\": ",
                           headers={**PUBLISHER, "Content-Type": "application/json"}),
    "empty body": dict(path="/v1/events/birth", content=b"",
                       headers={**PUBLISHER, "Content-Type": "application/json"}),
    "nested a thousand deep": dict(
        path="/v1/events/birth", content=b'{"mother": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        headers={**PUBLISHER, "Content-Type": "application/json"}),
    "invalid event": dict(path="/v1/events/birth",
                          content=b'{"event_id": "e-1", "mother": {"ssn": 5}, "x": 1}',
                          headers={**PUBLISHER, "Content-Type": "application/json"}),
    "undecodable Avro": dict(
        path="/v1/events/birth", content=b"\x00\x00\x00\x00\x01junk",
        headers={**PUBLISHER, "Content-Type": "application/vnd.handoff.avro"}),
    "declared body over the cap": dict(
        path="/v1/events/birth", content=b" " * (1 << 20) + b"{}",
        headers={**PUBLISHER, "Content-Type": "application/json"}),
    "empty batch": dict(path="/v1/events/birth:batch", content=b'{"events": []}',
                        headers=PUBLISHER),
    "batch of an invalid event": dict(
        path="/v1/events/birth:batch", content=b'{"events": [{"event_id": "e-2"}]}',
        headers=PUBLISHER),
    "batch as Avro": dict(path="/v1/events/birth:batch", content=b"{}",
                          headers={**PUBLISHER,
                                   "Content-Type": "application/vnd.handoff.avro"}),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_publish_gets_the_same_problem_either_way(apps, case):
    request = dict(REFUSALS[case])
    lean, plain = both(apps, request.pop("path"), **request)
    assert lean[0] >= 400
    assert lean == plain


def refusals(broker: Broker, kind: str) -> list[dict[str, Any]]:
    return [dict(r.detail) for r in broker.audit.iter_records(AuditFilter(kind=kind))]


@pytest.mark.parametrize(("kind", "case"), [
    ("access_refused", "no key"), ("access_refused", "key without the publish role"),
    ("publish_refused", "type the agency may not publish"),
    ("publish_refused", "invalid event")])
def test_a_refusal_is_audited_alike(apps, kind, case):
    lean, plain, broker = apps
    request = dict(REFUSALS[case])
    path = request.pop("path")
    records = []
    for client in (lean, plain):
        before = len(refusals(broker, kind))
        client.post(path, **request)
        records.append(refusals(broker, kind)[before:])
    assert len(records[0]) == 1 and records[0] == records[1]


def test_an_accepted_event_and_its_resend_are_answered_alike(apps):
    lean, plain, _ = apps
    body = birth_body()
    first = lean.post("/v1/events/birth", content=body, headers=PUBLISHER)
    assert first.status_code == 202 and first.json()["duplicate"] is False
    again_plain = plain.post("/v1/events/birth", content=body, headers=PUBLISHER)
    again_lean = lean.post("/v1/events/birth", content=body, headers=PUBLISHER)
    assert again_plain.json() == again_lean.json() == {**first.json(), "duplicate": True}
    assert answer(again_plain)[:2] == answer(again_lean)[:2]
    fresh_lean = answer(lean.post("/v1/events/birth", content=birth_body(),
                                  headers=PUBLISHER))
    fresh_plain = answer(plain.post("/v1/events/birth", content=birth_body(),
                                    headers=PUBLISHER))
    assert fresh_lean[:2] == fresh_plain[:2]
    assert fresh_lean[2].keys() == fresh_plain[2].keys()


def test_a_batch_is_answered_alike(apps):
    lean, plain, _ = apps
    answers = [client.post("/v1/events/birth:batch", headers=PUBLISHER, json={
        "events": [json.loads(birth_body()), json.loads(birth_body())]})
        for client in (lean, plain)]
    assert [a.status_code for a in answers] == [202, 202]
    assert [[e["duplicate"] for e in a.json()["accepted"]] for a in answers] == [
        [False, False], [False, False]]
    assert answer(answers[0])[1] == answer(answers[1])[1]


def test_lean_publishes_are_counted_under_their_route_template(apps):
    lean, _, _ = apps
    assert lean.post("/v1/events/birth", content=birth_body(),
                     headers=PUBLISHER).status_code == 202
    metrics = lean.get("/metrics").text
    assert ('handoff_http_requests_total{method="POST",route="/v1/events/{event_type}",'
            'status="202"}') in metrics
    assert 'route="/v1/events/birth"' not in metrics
