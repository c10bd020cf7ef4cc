"""SIGTERM, the way systemd, Docker and Kubernetes stop a process, stops every
long-running command cleanly: services stopped, a final audit checkpoint signed over the
head, exit 0 (issue 10, item 7).

Checkpoints on a timer are pushed an hour out, so the checkpoint found afterwards can
only be the one signed on the way out; each test has the process write audit records
just before the signal.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker.audit import SqliteAuditStore
from broker.audit.kafka_store import KafkaAuditStore
from broker.audit.paths import audit_db_path
from broker.log.kafka import KafkaEventLog
from tests.e2e.harness import DEMO, REPO, BrokerProcess, Client, free_port
from tests.integration.roles.conftest import (
    Installation,
    birth_of,
    decisions_made,
    mother,
)
from tests.waiting import eventually

pytestmark = pytest.mark.slow

NO_TIMER = {"HANDOFF_AUDIT__CHECKPOINT_INTERVAL_SECONDS": "3600"}


def terminate(proc: subprocess.Popen[Any]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


def covered(store: Any) -> tuple[int, int]:
    """(the head's position, the position the latest checkpoint signs)."""
    seq, _ = store.head()
    latest = store.latest_checkpoint()
    return seq, latest.seq if latest is not None else 0


def embedded_coverage(data_dir: Path) -> tuple[int, int]:
    store = SqliteAuditStore(audit_db_path(data_dir), create=False)
    try:
        return covered(store)
    finally:
        store.close()


def refused_call(process: BrokerProcess) -> None:
    """An audited refusal: a call without a key."""
    path = ("/v1/subscriptions/hv-births/events" if process.role == "delivery"
            else "/v1/events/birth")
    method = "GET" if process.role == "delivery" else "POST"
    assert httpx.request(method, f"{process.url}{path}", json={}).status_code == 401


@pytest.mark.parametrize("role", ["api", "delivery", "all"])
def test_sigterm_stops_a_serving_process_signing_the_head(embedded: Installation, keys,
                                                          role: str):
    process = embedded.start(role, env=NO_TIMER)
    if role != "delivery":
        Client(process.url, keys["county-general"]).publish_ok("birth", birth_of(mother(1)))
    refused_call(process)
    assert process.proc is not None
    assert terminate(process.proc) == 0, process.logs()
    head, signed = embedded_coverage(process.data_dir)
    assert head > 0 and signed == head, process.logs()


def test_sigterm_stops_the_router_after_its_last_batch_signing_the_head(
        embedded: Installation, keys):
    api = embedded.start("api", env=NO_TIMER)
    router = embedded.start("router", env=NO_TIMER)
    hospital = Client(api.url, keys["county-general"])
    for n in range(5):
        hospital.publish_ok("birth", birth_of(mother(n)))
    eventually(lambda: decisions_made(router) >= 5, timeout=60,
               message="the router did not decide")
    assert router.proc is not None
    assert terminate(router.proc) == 0, router.logs()
    head, signed = embedded_coverage(router.data_dir)
    assert head > 0 and signed == head


def test_sigterm_stops_a_router_on_kafka_signing_the_head(on_kafka: Installation, keys):
    api = on_kafka.start("api", env=NO_TIMER)
    router = on_kafka.start("router", env=NO_TIMER)
    hospital = Client(api.url, keys["county-general"])
    for n in range(3):
        hospital.publish_ok("birth", birth_of(mother(n)))
    eventually(lambda: decisions_made(router) >= 3, timeout=120,
               message="the router did not decide")
    assert router.proc is not None
    assert terminate(router.proc) == 0, router.logs()
    assert api.proc is not None
    assert terminate(api.proc) == 0, api.logs()
    backend = on_kafka.template.backend
    assert backend.bootstrap_servers is not None
    event_log = KafkaEventLog(backend.bootstrap_servers, topic_prefix=backend.topic_prefix)
    store = KafkaAuditStore(event_log, router.data_dir.parent / "check-index.db",
                            writer="check")
    try:
        head, signed = covered(store)
    finally:
        store.close()
        event_log.close()
    assert head > 0 and signed == head


def test_sigterm_stops_connect_run_signing_the_head(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(yaml.safe_dump({"connectors": [{
        "name": "cg-births", "type": "file_drop", "agency": "county-general",
        "folder": str(drop), "mapping": {"event_type": "birth",
                                         "fields": {"subject_id": "mrn"}}}]}))
    data = tmp_path / "data"
    with (tmp_path / "connect.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker.cli.main", "connect", "run", str(connectors),
             "--policy", str(DEMO / "policy"), "--data", str(data)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    eventually(lambda: "running 1 connector" in (tmp_path / "connect.log").read_text(),
               timeout=60, message="connect run did not start")
    assert terminate(proc) == 0, (tmp_path / "connect.log").read_text()
    head, signed = embedded_coverage(data)
    assert head > 0 and signed == head


def test_sigterm_stops_the_demo_signing_the_head(tmp_path):
    port, data = free_port(), tmp_path / "data"
    with (tmp_path / "demo.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker.cli.main", "demo", "--pace", "0", "--port",
             str(port), "--data", str(data)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    eventually(lambda: "The story is over" in (tmp_path / "demo.log").read_text(),
               timeout=180, message="the demo did not tell its story")
    assert terminate(proc) == 0, (tmp_path / "demo.log").read_text()
    head, signed = embedded_coverage(data)
    assert head > 0 and signed == head
