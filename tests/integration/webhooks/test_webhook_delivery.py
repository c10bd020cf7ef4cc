"""Webhook delivery against a real HTTP receiver: signatures, permitted fields, retries,
Retry-After, 410, dead letters and their replay, restarts."""

from __future__ import annotations

import json

import pytest

from broker.audit.store import AuditFilter
from connectors.webhook_receiver import verify
from connectors.webhook_signing import WebhookSecret
from tests.integration.webhooks.conftest import SUB, auth
from tests.integration.webhooks.receiver_server import WebhookReceiver
from tests.waiting import eventually

# A broker runs in the test's process (seconds a file): the full suite, not the fast lane.
pytestmark = pytest.mark.slow


def audit_kinds(broker, kind: str) -> list:
    return [r for r in broker.runtime.audit.iter_records(AuditFilter(kind=kind))]


def test_delivery_is_signed_and_carries_only_the_permitted_fields(make_broker, receiver):
    broker = make_broker(receiver.url)
    event = broker.publish_birth()
    assert receiver.wait_for(lambda r: len(r.delivered()) == 1)
    (request,) = receiver.requests
    delivery = request.payload
    assert delivery["event_id"] == event["event_id"]
    assert request.headers["webhook-id"] == delivery["decision_id"]
    assert delivery["data"]["mother"]["first_name"] == event["mother"]["first_name"]
    assert delivery["data"]["mother"]["phone"] == event["mother"]["phone"]
    # The SSN is never shared with home visiting: absent from the body, listed withheld.
    assert event["mother"]["ssn"] not in request.body.decode()
    assert delivery["data"]["mother"].get("ssn") is None
    assert "mother.ssn" in delivery["withheld"]
    # The pull API's event object, byte for byte the same fields.
    pulled = broker.client.get(f"/v1/subscriptions/{SUB}/events",
                               headers=auth("hv-nfp")).json()["events"][0]
    assert {k: v for k, v in pulled.items() if k != "cursor"} == \
        {k: v for k, v in delivery.items() if k != "cursor"}


def test_rotated_secrets_sign_with_both_so_either_side_of_the_rotation_verifies(
        make_broker, receiver, receiver_secret):
    new = WebhookSecret.generate().encoded()
    broker = make_broker(receiver.url, secrets=[new, receiver_secret])
    broker.publish_birth()
    assert receiver.wait_for(lambda r: len(r.delivered()) == 1)
    request = receiver.requests[0]
    assert len(request.headers["webhook-signature"].split()) == 2
    assert verify(request.headers, request.body, [new])["decision_id"]
    assert verify(request.headers, request.body, [receiver_secret])["decision_id"]


def test_receiver_failing_for_a_while_gets_every_event_in_order_once_it_recovers(
        make_broker, receiver):
    receiver.script = [500, 503, 502]
    broker = make_broker(receiver.url, schedule=(0, 0.1, 0.1, 0.1, 0.1))
    events = [broker.publish_birth() for _ in range(3)]
    assert receiver.wait_for(lambda r: len(r.delivered()) == 3)
    assert [d["event_id"] for d in receiver.delivered()] == [e["event_id"] for e in events]
    # The first event was tried four times; nothing behind it jumped the queue.
    first = events[0]["event_id"]
    assert [json.loads(r.body)["event_id"] for r in receiver.requests[:4]] == [first] * 4
    assert broker.client.get(f"/v1/subscriptions/{SUB}/dead-letters",
                             headers=auth("hv-nfp")).json()["dead_letters"] == []
    text = broker.client.get("/metrics").text
    assert f'handoff_webhook_retries_total{{subscription="{SUB}"}} 3.0' in text
    assert f'handoff_webhook_attempts_total{{outcome="failed",subscription="{SUB}"}} 3.0' \
        in text


@pytest.mark.slow
def test_retry_after_is_honoured_over_a_shorter_schedule(make_broker, receiver):
    receiver.script, receiver.retry_after = [503], "2"
    broker = make_broker(receiver.url, schedule=(0, 0.05, 0.05))
    broker.publish_birth()
    assert receiver.wait_for(lambda r: len(r.delivered()) == 1)
    first, second = receiver.requests[0], receiver.requests[1]
    waited = int(second.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"])
    assert waited >= 1   # whole seconds; the schedule alone would retry in 50 ms


def test_receiver_that_keeps_failing_ends_in_the_dead_letter_queue_and_replay_delivers(
        make_broker, receiver):
    receiver.default = 500
    broker = make_broker(receiver.url, schedule=(0, 0.05, 0.05))
    events = [broker.publish_birth() for _ in range(2)]
    listed = _wait_dead_letters(broker, 2)
    assert [d["event_id"] for d in listed] == [e["event_id"] for e in events]
    assert listed[0]["attempts"] == 3          # the whole schedule
    assert listed[1]["attempts"] == 1          # the endpoint was failing by then
    assert listed[0]["reason"] == "HTTP 500" and listed[0]["last_status"] == 500
    assert listed[0]["delivery"]["data"]["mother"]["first_name"]
    status = broker.client.get(f"/v1/subscriptions/{SUB}/webhook",
                               headers=auth("hv-nfp")).json()
    assert status["status"] == "failing" and status["dead_letters_pending"] == 2
    dead = audit_kinds(broker, "delivery_dead_lettered")
    assert sorted(r.event_id for r in dead) == sorted(e["event_id"] for e in events)
    assert all(r.subject and r.subject.startswith("sp_") for r in dead)

    receiver.default = 204
    response = broker.client.post(f"/v1/subscriptions/{SUB}/dead-letters:replay",
                                  headers=auth("hv-nfp"))
    assert response.status_code == 202, response.text
    assert response.json()["replayed"] == ["0", "1"]
    assert receiver.wait_for(lambda r: len(r.delivered()) == 2)
    assert [d["event_id"] for d in receiver.delivered()] == [e["event_id"] for e in events]
    assert [r.decision_id for r in audit_kinds(broker, "delivery_replayed")] == \
        [d["decision_id"] for d in listed]
    pending = broker.client.get(f"/v1/subscriptions/{SUB}/dead-letters",
                                params={"pending": True}, headers=auth("hv-nfp")).json()
    assert pending["dead_letters"] == []
    assert broker.client.get(f"/v1/subscriptions/{SUB}/webhook",
                             headers=auth("hv-nfp")).json()["status"] == "healthy"


def test_dead_letters_are_for_the_subscriber_and_admins_only(make_broker, receiver):
    receiver.default = 500
    broker = make_broker(receiver.url, schedule=(0,))
    broker.publish_birth()
    _wait_dead_letters(broker, 1)
    other = broker.client.get(f"/v1/subscriptions/{SUB}/dead-letters",
                              headers=auth("county-general"))
    assert other.status_code == 403
    refused = broker.client.post(f"/v1/subscriptions/{SUB}/dead-letters:replay",
                                 headers=auth("medicaid"))
    assert refused.status_code == 403
    admin = broker.client.get(f"/v1/subscriptions/{SUB}/dead-letters", headers=auth("admin"))
    assert admin.status_code == 200
    (letter,) = admin.json()["dead_letters"]
    assert "delivery" not in letter       # ids and reasons, not the family's data
    assert letter["event_id"]
    unknown = broker.client.post(f"/v1/subscriptions/{SUB}/dead-letters:replay",
                                 json={"ids": ["7"]}, headers=auth("admin"))
    assert unknown.status_code == 404


@pytest.mark.slow
def test_410_gone_disables_the_endpoint_until_it_is_enabled_again(make_broker, receiver):
    receiver.script = [410]
    broker = make_broker(receiver.url)
    broker.publish_birth()
    assert receiver.wait_for(lambda r: len(r.requests) == 1)
    status = _wait_status(broker, "disabled")
    assert status["reason"] == "HTTP 410"
    broker.publish_birth()
    assert not receiver.wait_for(lambda r: len(r.requests) > 1, timeout=1.5)
    enabled = broker.client.post(f"/v1/subscriptions/{SUB}/webhook:enable",
                                 headers=auth("hv-nfp"))
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["previous_status"] == "disabled"
    assert receiver.wait_for(lambda r: len(r.delivered()) == 2)
    assert [r.detail["previous_status"] for r in audit_kinds(broker, "webhook_enabled")] \
        == ["disabled"]


@pytest.mark.slow
def test_the_cursor_survives_a_restart(make_broker, receiver):
    broker = make_broker(receiver.url)
    broker.publish_birth()
    broker.publish_birth()
    assert receiver.wait_for(lambda r: len(r.delivered()) == 2)
    broker.stop()
    again = make_broker(receiver.url,
                        policy=broker.runtime.settings.policy_dir)
    again.publish_birth()
    assert receiver.wait_for(lambda r: len(r.delivered()) == 3)
    assert not receiver.wait_for(lambda r: len(r.requests) > 3, timeout=1.0)
    assert len({d["decision_id"] for d in receiver.delivered()}) == 3


@pytest.mark.slow
def test_no_secret_means_nothing_is_sent_unsigned(make_broker, tmp_path):
    receiver = WebhookReceiver(secrets=[WebhookSecret.generate().encoded()]).start()
    try:
        broker = make_broker(receiver.url, secrets=[])
        broker.publish_birth()
        assert not receiver.wait_for(lambda r: len(r.requests) > 0, timeout=1.5)
    finally:
        receiver.stop()


def _wait_dead_letters(broker, count: int) -> list[dict]:
    listed: list[dict] = []

    def enough() -> bool:
        listed[:] = broker.client.get(f"/v1/subscriptions/{SUB}/dead-letters",
                                      headers=auth("hv-nfp")).json()["dead_letters"]
        return len(listed) >= count

    eventually(enough, timeout=20, interval=0.1,
               message=lambda: f"{len(listed)} of {count} dead letters: {listed}")
    assert len(listed) == count, listed
    return listed


def _wait_status(broker, status: str) -> dict:
    def in_status() -> dict | None:
        body = broker.client.get(f"/v1/subscriptions/{SUB}/webhook",
                                 headers=auth("hv-nfp")).json()
        return body if body["status"] == status else None

    return eventually(in_status, timeout=10, interval=0.1,
                      message=f"the webhook never became {status}")
