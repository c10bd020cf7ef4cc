"""A split deployment on the embedded log: one router process, one process serving
agencies, sharing a data directory."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.e2e.harness import REPO, Client
from tests.integration.roles.conftest import (
    Installation,
    audited_decision_ids,
    birth_of,
    decisions_made,
    mother,
)

pytestmark = pytest.mark.slow


def test_events_published_to_one_process_are_routed_by_another_and_delivered(
        embedded: Installation, keys):
    front = embedded.start("api,delivery")
    router = embedded.start("router")
    hospital = Client(front.url, keys["county-general"])
    births = [birth_of(mother(n)) for n in range(20)]
    for event in births:
        hospital.publish_ok("birth", event)

    # Deliveries written by the router process decode in the delivery process, whose
    # registry learns the view schemas the router registered.
    evaluation = Client(front.url, keys["state-evaluation"])
    delivered = evaluation.pull_all("eval-births", expect=len(births))
    assert {d["event_id"] for d in delivered} == {e["event_id"] for e in births}
    assert all(d["data"]["child"]["birth_weight_grams"] == 2410 for d in delivered)
    avro = evaluation.http.get("/v1/subscriptions/eval-births/events",
                               headers={"Accept": "application/vnd.handoff.avro"})
    assert avro.status_code == 200 and avro.content.startswith(b"Obj\x01")

    # The decisions were made in the router process, and audited.
    assert decisions_made(router) >= 2 * len(births)
    assert decisions_made(front) == 0
    audited = audited_decision_ids(Client(front.url, keys["auditor"]), "eval-births")
    assert {d["decision_id"] for d in delivered} <= audited


def test_a_router_process_serves_only_health_and_metrics(embedded: Installation, keys):
    router = embedded.start("router")
    assert httpx.get(f"{router.url}/healthz").status_code == 200
    ready = httpx.get(f"{router.url}/readyz").json()
    assert ready["checks"]["router"] == "running"
    assert "handoff_router_lag_records" in httpx.get(f"{router.url}/metrics").text
    hospital = Client(router.url, keys["county-general"])
    assert hospital.publish("birth", birth_of(mother(1))).status_code == 404


def test_a_second_router_on_the_embedded_log_is_refused_until_the_first_is_gone(
        embedded: Installation):
    first = embedded.start("router")
    second = first.sibling("router")
    refused = subprocess.run(second.command(), env=second.environment(), cwd=REPO,
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2
    (line,) = [line for line in refused.stderr.splitlines() if line.startswith("handoff:")]
    assert "another router process already routes the embedded log" in line
    assert "Kafka backend" in line

    first.kill()   # the lock goes with the process, however it dies
    embedded.start("router")


def test_an_unknown_role_is_refused_with_exit_code_2(embedded: Installation):
    process = embedded.template.sibling("api,courier")
    result = subprocess.run(process.command(), env=process.environment(), cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "unknown role 'courier'" in result.stderr
