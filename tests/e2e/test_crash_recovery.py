"""`kill -9` mid-stream: nothing acknowledged is lost, nothing is delivered unaudited."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import httpx
import pytest

from broker.demo import story
from tests.e2e.harness import BrokerProcess, Client, LogBackend
from tests.waiting import eventually

pytestmark = pytest.mark.slow

EVENTS = 400


def births() -> list[dict]:
    make = story.STORY[2].build
    return [make(datetime.now(UTC)) for _ in range(EVENTS)]


def test_kill_9_loses_no_accepted_event_and_delivers_none_unaudited(
        tmp_path, keys, log_backend: LogBackend):
    broker = BrokerProcess(data_dir=tmp_path / "data", backend=log_backend).start()
    events = births()
    acked: set[str] = set()
    hospital = Client(broker.url, keys["county-general"])

    def publish_until_refused() -> None:
        for event in events:
            try:
                response = hospital.publish("birth", event)
            except httpx.TransportError:
                return
            if response.status_code == 202:
                acked.add(event["event_id"])

    publisher = threading.Thread(target=publish_until_refused)
    publisher.start()
    eventually(lambda: len(acked) >= EVENTS // 4 or not publisher.is_alive(), timeout=120,
               interval=0.01, message="a quarter of the events were not accepted")
    broker.kill()
    publisher.join(30)
    assert EVENTS // 4 <= len(acked) < EVENTS, "the kill should land mid-stream"

    restarted = broker.sibling("all", port=broker.port).start()
    try:
        hospital = Client(restarted.url, keys["county-general"])
        # The publisher retries everything it is unsure about: accepted ones come back
        # as duplicates with their original offsets, the rest are appended now.
        answers = [hospital.publish_ok("birth", e) for e in events]
        duplicates = {a["event_id"] for a in answers if a["duplicate"]}
        assert acked <= duplicates

        delivered = Client(restarted.url, keys["state-evaluation"]).pull_all(
            "eval-births", expect=EVENTS, timeout=60)
        delivered_ids = {d["event_id"] for d in delivered}
        assert delivered_ids == {e["event_id"] for e in events}

        auditor = Client(restarted.url, keys["auditor"])
        audited: set[str] = set()
        after = 0
        while True:
            page = auditor.http.get("/v1/audit/decisions", params={
                "subscription": "eval-births", "after": after, "limit": 1000}).json()
            if not page["records"]:
                break
            audited.update(r["decision_id"] for r in page["records"])
            after = page["next"]
        assert {d["decision_id"] for d in delivered} <= audited
        # Duplicates, if any, are recognisable: same event id, same decision id.
        by_event: dict[str, set[str]] = {}
        for d in delivered:
            by_event.setdefault(d["event_id"], set()).add(d["decision_id"])
        assert all(len(ids) == 1 for ids in by_event.values())
    finally:
        restarted.stop()
