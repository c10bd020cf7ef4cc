"""Referral status updates checked where they are published, and the overdue alerts the
broker publishes itself, over a real broker in this process (embedded log, audit store,
router and referral worker). One row per refusal, the answer spelled out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.audit.store import AuditFilter
from broker.bootstrap import Broker, build_broker
from broker.config import load_settings
from broker.demo import story
from tests.e2e.harness import DEMO, demo_keys
from tests.waiting import eventually

# A broker runs in the test's process (seconds a file): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

KEYS = demo_keys()
T = datetime(2026, 11, 9, 10, 5, tzinfo=UTC)


def auth(agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[agency]}"}


class Clock:
    """The referral timers' clock, moved by the test."""

    def __init__(self) -> None:
        self.ahead_ms = 0

    def __call__(self) -> int:
        return int(time.time() * 1000) + self.ahead_ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(tmp_path, clock: Clock) -> Iterator[tuple[TestClient, Broker]]:
    settings = load_settings(policy_dir=DEMO / "policy", data_dir=tmp_path / "data",
                             keys_file=DEMO / "keys.yaml",
                             referrals={"tick_seconds": 0.1})
    broker = build_broker(settings, timer_clock=clock)
    broker.start()
    try:
        with TestClient(create_app(broker.api)) as client:
            yield client, broker
    finally:
        broker.stop()


def a_referral(client: TestClient, referral_id: str, by: str = "cw-hotline") -> None:
    event = story.referral("MPI-1", referral_id, "Keisha", "Brown", "Jaylen")(T)
    response = client.post("/v1/events/referral", json=event, headers=auth(by))
    assert response.status_code == 202, response.text


def a_status(referral_id: str, new: str, hours: int, business: str | None = None,
             reason: str | None = None, **changes: Any) -> dict[str, Any]:
    event = story.status("MPI-1", referral_id, new, business, reason)(T + timedelta(hours=hours))
    event.update(changes)
    return event


def statuses_on_the_log(runtime: Broker) -> int:
    topic = "events.referral_status"
    return sum(runtime.log.end_offset(topic, p) for p in range(runtime.log.partitions(topic)))


@pytest.mark.parametrize(("before", "sent", "agency", "status", "slug", "field", "message"), [
    ([("ACCEPTED", 1, None, None)], ("RECEIVED", 2, None, None), "hv-nfp", 422,
     "referral-refused", "status", "a referral that is ACCEPTED cannot become RECEIVED "
     "(allowed next: ACCEPTED, IN_PROGRESS, ON_HOLD, FAILED, CANCELLED)"),
    ([("REJECTED", 1, None, "NO_CAPACITY")], ("ACCEPTED", 2, None, None), "hv-nfp", 422,
     "referral-refused", "status", "a referral that is REJECTED cannot become ACCEPTED "
     "(allowed next: none: the referral is closed)"),
    ([("ACCEPTED", 5, None, None)], ("REJECTED", 1, None, "NOT_ELIGIBLE"), "hv-nfp", 422,
     "referral-refused", "status", "this REJECTED update is dated before a ACCEPTED update "
     "already recorded, which could not follow it"),
    ([], ("REJECTED", 1, None, None), "hv-nfp", 422, "referral-refused", "reason",
     "a REJECTED referral needs a reason"),
    ([], ("IN_PROGRESS", 1, "WAITLISTED", None), "hv-nfp", 422, "referral-refused",
     "business_status", "a IN_PROGRESS referral cannot be WAITLISTED"),
    ([], ("ACCEPTED", 1, None, None), "cw-hotline", 403, "not-a-party", "recorded_by",
     "must be the publishing agency 'cw-hotline'"),
])
def test_a_status_that_does_not_fit_its_referral_is_refused_and_nothing_is_appended(
        api, before, sent, agency, status, slug, field, message) -> None:
    client, runtime = api
    referral_id = f"HL-{uuid.uuid4().hex[:6]}"
    a_referral(client, referral_id)
    for new, hours, business, reason in before:
        response = client.post("/v1/events/referral_status", headers=auth("hv-nfp"),
                               json=a_status(referral_id, new, hours, business, reason))
        assert response.status_code == 202, response.text
    on_the_log = statuses_on_the_log(runtime)
    new, hours, business, reason = sent
    response = client.post("/v1/events/referral_status", headers=auth(agency),
                           json=a_status(referral_id, new, hours, business, reason))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert any(e["field"] == field and message in e["message"] for e in body["errors"]), body
    assert referral_id not in response.text and "MPI-1" not in response.text
    assert statuses_on_the_log(runtime) == on_the_log


def test_the_referrer_may_cancel_but_may_not_record_for_the_receiver(api) -> None:
    client, _ = api
    referral_id = f"HL-{uuid.uuid4().hex[:6]}"
    a_referral(client, referral_id)
    accepted = a_status(referral_id, "ACCEPTED", 1, recorded_by="cw-hotline")
    refused = client.post("/v1/events/referral_status", json=accepted,
                          headers=auth("cw-hotline"))
    assert refused.status_code == 403
    assert "may only cancel" in refused.json()["detail"]
    cancel = a_status(referral_id, "CANCELLED", 2, reason="REFERRAL_WITHDRAWN",
                      recorded_by="cw-hotline")
    assert client.post("/v1/events/referral_status", json=cancel,
                       headers=auth("cw-hotline")).status_code == 202


def test_a_batch_is_checked_in_order_and_refused_whole(api) -> None:
    client, runtime = api
    referral_id = f"HL-{uuid.uuid4().hex[:6]}"
    a_referral(client, referral_id)
    before = statuses_on_the_log(runtime)
    response = client.post("/v1/events/referral_status:batch", headers=auth("hv-nfp"), json={
        "events": [a_status(referral_id, "ACCEPTED", 1),
                   a_status(referral_id, "RECEIVED", 2),
                   a_status(referral_id, "IN_PROGRESS", 3, "CONTACTED")]})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["events[1].status"]
    assert statuses_on_the_log(runtime) == before
    refused = list(runtime.audit.iter_records(AuditFilter(kind="publish_refused")))
    assert refused[-1].detail["reason"] == "illegal_transition"
    assert refused[-1].detail["fields"] == ["events[1].status"]
    ok = client.post("/v1/events/referral_status:batch", headers=auth("hv-nfp"), json={
        "events": [a_status(referral_id, "ACCEPTED", 1),
                   a_status(referral_id, "IN_PROGRESS", 3, "CONTACTED")]})
    assert ok.status_code == 202, ok.text


def test_no_agency_may_publish_the_brokers_own_alerts(api) -> None:
    client, _ = api
    event = {"event_id": str(uuid.uuid4()), "occurred_at": 1794549600000,
             "subject_id": "MPI-1", "referral_id": "HL-1", "referrer": "cw-hotline",
             "receiver": "hv-nfp", "service": "HOME_VISITING", "service_level": "RECEIVED",
             "within": "1 business day", "terms_id": "hotline-to-nfp",
             "referred_at": 1794218700000, "due_at": 1794549600000, "alert": "RAISED",
             "status": "REQUESTED"}
    for agency in ("cw-hotline", "hv-nfp", "admin"):
        response = client.post("/v1/events/handoff_overdue", json=event, headers=auth(agency))
        assert response.status_code == 403, (agency, response.text)


def alerts(client: TestClient, sub: str, agency: str) -> list[tuple[str, str, str]]:
    body = client.get(f"/v1/subscriptions/{sub}/events", params={"limit": 100},
                      headers=auth(agency)).json()
    return [(e["data"]["referral_id"], e["data"]["service_level"], e["data"]["alert"])
            for e in body["events"]]


@pytest.mark.slow
def test_the_worker_publishes_each_overdue_alert_once_and_audits_it(api, clock) -> None:
    client, runtime = api
    a_referral(client, "HL-LATE")
    clock.ahead_ms = 10 * 86_400_000          # past received and first contact
    expected = [("HL-LATE", "RECEIVED", "RAISED"), ("HL-LATE", "FIRST_CONTACT", "RAISED")]
    eventually(lambda: sorted(alerts(client, "cw-handoff-alerts", "cw-hotline"))
               == sorted(expected), timeout=15, message="no alerts to the referrer")
    eventually(lambda: sorted(alerts(client, "hv-handoff-alerts", "hv-nfp"))
               == sorted(expected), timeout=15, message="no alerts to the receiver")
    time.sleep(0.5)                           # more ticks: nothing new
    assert len(alerts(client, "cw-handoff-alerts", "cw-hotline")) == 2
    audited = list(runtime.audit.iter_records(AuditFilter(kind="referral_alert")))
    assert sorted((r.outcome, r.detail["service_level"]) for r in audited) == [
        ("raised", "first_contact"), ("raised", "received")]
    assert all(r.subject and r.subject.startswith("sp_") for r in audited)
    assert "MPI-1" not in str([r.detail for r in audited])

    late = a_status("HL-LATE", "ACCEPTED", 24 * 12, "CONTACT_ATTEMPTED")
    assert client.post("/v1/events/referral_status", json=late,
                       headers=auth("hv-nfp")).status_code == 202
    eventually(lambda: len(alerts(client, "cw-handoff-alerts", "cw-hotline")) == 4,
               timeout=15, message="the late update cleared nothing")
    assert sorted(alerts(client, "cw-handoff-alerts", "cw-hotline"))[:2] == [
        ("HL-LATE", "FIRST_CONTACT", "CLEARED"), ("HL-LATE", "FIRST_CONTACT", "RAISED")]
    service = runtime.api.referrals
    assert service is not None and service.overdue(referrer="cw-hotline") == ()
