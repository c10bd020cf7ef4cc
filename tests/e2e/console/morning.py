"""The demo's morning, published over HTTP to a running broker, as `handoff demo` does."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from broker.demo.story import STORY
from tests.waiting import eventually


def play_morning(url: str, keys: dict[str, str]) -> int:
    """Publish every step of the story; returns how many were accepted. Waits until the
    router has decided all of them (the audit log's decisions stop growing)."""
    accepted = 0
    with httpx.Client(base_url=url, timeout=30) as http:
        for step in STORY:
            response = http.post(f"/v1/events/{step.event_type}",
                                 json=step.build(datetime.now(UTC)),
                                 headers={"Authorization": f"Bearer {keys[step.agency]}"})
            assert response.status_code == (403 if step.refused else 202), response.text
            accepted += response.status_code == 202
        auditor = {"Authorization": f"Bearer {keys['auditor']}"}

        def decided() -> bool:
            records = http.get("/v1/audit/decisions", params={"limit": 1000},
                               headers=auditor).json()["records"]
            return len({r["event_id"] for r in records}) >= 8

        eventually(decided, timeout=30, message="the router did not decide the morning")
    return accepted
