"""Fixtures for split deployments: several `handoff serve` processes of one installation
(one data directory, one event log), each in its own role."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.audit.checkpoints import CheckpointSigner
from broker.audit.paths import pseudonym_key_path, signing_key_path
from broker.audit.pseudonym import load_or_create_pseudonym_key
from broker.bootstrap import load_or_create_secret
from broker.demo import story
from tests.e2e.harness import BrokerProcess, Client, LogBackend, demo_keys, unlinked_demo_policy
from tests.kafka_broker import kafka_broker  # noqa: F401  (the session's Kafka broker)
from tests.waiting import eventually

MOTHER_PHONE = "608-555-0142"


class Installation:
    """Processes sharing one data directory and event log; every one is stopped (or
    killed) when the test ends."""

    def __init__(self, root: Path, backend: LogBackend, policy_dir: Path | None = None
                 ) -> None:
        self.template = BrokerProcess(data_dir=root / "data", backend=backend)
        if policy_dir is not None:
            self.template.policy_dir = policy_dir
        self.processes: list[BrokerProcess] = []
        # As an operator does (deploy/make_keys.py): the keys every process shares are
        # made once, before processes start side by side.
        keys = self.template.data_dir / "keys"
        load_or_create_secret(keys / "policy-pseudonym.key")
        load_or_create_pseudonym_key(pseudonym_key_path(self.template.data_dir))
        CheckpointSigner.load_or_create(signing_key_path(self.template.data_dir))

    def start(self, role: str, env: dict[str, str] | None = None) -> BrokerProcess:
        (process,) = self.start_together(role, env=env)
        return process

    def start_together(self, *roles: str, env: dict[str, str] | None = None
                       ) -> list[BrokerProcess]:
        """One process per role, started side by side; returns once all are ready."""
        started = []
        for role in roles:
            process = self.template.sibling(role)
            process.env = {**process.env, **(env or {})}
            self.processes.append(process)
            started.append(process.launch())
        return [process.wait_ready(120) for process in started]

    def close(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def keys() -> dict[str, str]:
    return demo_keys()


@pytest.fixture
def embedded(tmp_path) -> Iterator[Installation]:
    installation = Installation(tmp_path, LogBackend.embedded())
    yield installation
    installation.close()


@pytest.fixture
def on_kafka(tmp_path, kafka_broker) -> Iterator[Installation]:  # noqa: F811
    # Several routers share the ingress partitions here; record linkage on Kafka has one
    # writer (docs/linkage.md), so these tests of the router group run without it.
    installation = Installation(tmp_path, LogBackend.kafka(kafka_broker.bootstrap_servers),
                                unlinked_demo_policy(tmp_path))
    yield installation
    installation.close()


def mother(n: int) -> str:
    """A subject id of the test's own."""
    return f"MPI-9{n:06d}"


def birth_of(subject: str) -> dict[str, Any]:
    """A county-general birth for `subject`, with health facts and a fresh event id."""
    event = story.birth(subject, f"MPI-8{subject[-6:]}", "Amara", "Lindqvist", "Jolene",
                        "1995-05-16", "OPIOIDS", 2410, 36, True, True, True, "53703",
                        MOTHER_PHONE, "512-44-9031", "WI-MA-77120934")(datetime.now(UTC))
    event["event_id"] = str(uuid.uuid4())
    return event


def consent_of(subject: str, action: str, effective_at: str | None = None) -> dict[str, Any]:
    """County-general consent (GRANT or REVOKE) naming hv-nfp for health facts."""
    event = story.consent(subject, f"CONSENT-{subject}", action, "Jolene Lindqvist",
                          ["hv-nfp"], ["care_coordination"],
                          ["health", "benefits", "sud"])(datetime.now(UTC))
    if effective_at is not None:
        event["effective_at"] = effective_at
    return event


def decisions_made(process: BrokerProcess) -> float:
    """How many decisions this process has made, from its /metrics."""
    text = httpx.get(f"{process.url}/metrics", timeout=10).text
    return sum(float(value) for value in
               re.findall(r"^handoff_decisions_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


def audited_decision_ids(client: Client, subscription: str) -> set[str]:
    """Every decision id in the audit log for `subscription` (an auditor's client)."""
    audited: set[str] = set()
    after = 0
    while True:
        response = client.http.get("/v1/audit/decisions", params={
            "subscription": subscription, "after": after, "limit": 1000})
        assert response.status_code == 200, response.text
        page = response.json()
        if not page["records"]:
            return audited
        audited.update(r["decision_id"] for r in page["records"])
        after = page["next"]


def pull_until(client: Client, subscription: str, wanted: set[str], timeout: float = 120
               ) -> list[dict[str, Any]]:
    """Every delivery of `subscription`, in feed order, pulled until each event id in
    `wanted` has arrived; fails the test if some have not after `timeout` seconds."""
    events: list[dict[str, Any]] = []
    seen: set[str] = set()
    cursor = None

    def every_wanted_arrived() -> bool:
        nonlocal cursor
        params: dict[str, Any] = {"limit": 1000, "wait": 1}
        if cursor:
            params["after"] = cursor
        response = client.http.get(f"/v1/subscriptions/{subscription}/events", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        events.extend(body["events"])
        seen.update(e["event_id"] for e in body["events"])
        cursor = body["next"]
        return wanted <= seen

    if wanted:
        eventually(every_wanted_arrived, timeout=timeout, interval=0,
                   message=lambda: f"{subscription}: {len(wanted - seen)} wanted events "
                                   "never arrived")
    return events
