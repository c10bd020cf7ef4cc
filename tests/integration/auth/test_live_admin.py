"""A running broker takes key changes and policy reloads without a restart, and keeps
the last good policy when a reload is refused, saying so.

One broker process serves the module. Before each test its policy folder is put back to
the demo policy and reloaded, and each test reads only the audit records and log lines
written after it began.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.audit import SqliteAuditStore
from broker.audit.paths import audit_db_path
from broker.audit.store import AuditFilter
from broker.auth import Role
from broker.auth.keyfile import KeyFile
from tests.demo_broker import demo_birth
from tests.e2e.harness import DEMO, REPO, BrokerProcess
from tests.waiting import eventually

pytestmark = pytest.mark.slow


def a_birth() -> dict[str, Any]:
    return demo_birth()


def audit_records(data_dir: Path, kind: str) -> list[Any]:
    store = SqliteAuditStore(audit_db_path(data_dir), create=False)
    try:
        return list(store.iter_records(AuditFilter(kind=kind)))
    finally:
        store.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker.cli.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


def audit_head(data_dir: Path) -> int:
    store = SqliteAuditStore(audit_db_path(data_dir), create=False)
    try:
        return store.head()[0]
    finally:
        store.close()


@dataclass
class Live:
    """The module's broker as one test sees it."""

    broker: BrokerProcess
    secrets: dict[str, str]
    audit_mark: int
    log_mark: int

    def records(self, kind: str) -> list[Any]:
        """Audit records of `kind` written since the test began."""
        return [r for r in audit_records(self.broker.data_dir, kind) if r.seq > self.audit_mark]

    def logs(self) -> str:
        """The broker's log since the test began."""
        return self.broker.logs()[self.log_mark:]


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[tuple[BrokerProcess, dict[str, str]]]:
    root = tmp_path_factory.mktemp("live")
    policy = root / "policy"
    shutil.copytree(DEMO / "policy", policy)
    keys_file = root / "keys.yaml"
    keyfile = KeyFile(keys_file)
    secrets = {
        "admin": keyfile.issue("state-integration-team", [Role.ADMIN], key_id="ops").secret,
        "nfp": keyfile.issue("hv-nfp", [Role.SUBSCRIBE], key_id="nfp").secret,
    }
    broker = BrokerProcess(data_dir=root / "data", policy_dir=policy,
                           keys_file=keys_file).start()
    try:
        yield broker, secrets
    finally:
        broker.stop()


@pytest.fixture
def live(running) -> Live:
    """The module's broker with the demo policy in force again, its files as shipped."""
    broker, secrets = running
    for shipped in (DEMO / "policy").rglob("*"):
        if shipped.is_file():
            shutil.copy(shipped, broker.policy_dir / shipped.relative_to(DEMO / "policy"))
    reloaded = httpx.post(f"{broker.url}/v1/admin/policy:reload",
                          headers=bearer(secrets["admin"]), timeout=30)
    assert reloaded.status_code == 200, reloaded.text
    assert "policy_reload" not in httpx.get(f"{broker.url}/readyz").json()["checks"]
    return Live(broker, secrets, audit_head(broker.data_dir), len(broker.logs()))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_keys_issued_and_revoked_from_the_cli_take_effect_without_restart(live):
    broker = live.broker
    keys = str(broker.keys_file)
    issued = cli("keys", "issue", "--agency", "county-general", "--role", "publish",
                 "--id", "cgh-ehr", "--keys", keys)
    assert issued.returncode == 0, issued.stderr
    secret = issued.stdout.strip()
    eventually(lambda: httpx.post(f"{broker.url}/v1/events/birth", json=a_birth(),
                                  headers=bearer(secret)).status_code == 202,
               interval=0.1, message="the issued key was not accepted")

    assert cli("keys", "revoke", "cgh-ehr", "--keys", keys).returncode == 0
    eventually(lambda: httpx.post(f"{broker.url}/v1/events/birth", json=a_birth(),
                                  headers=bearer(secret)).status_code == 401,
               interval=0.1, message="the revoked key was still accepted")
    refused = httpx.post(f"{broker.url}/v1/events/birth", json=a_birth(),
                         headers=bearer(secret))
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/unauthenticated"
    assert "revoked" in refused.json()["detail"]
    refusals = live.records("access_refused")
    assert any(r.actor == "cgh-ehr" and r.detail["reason"] == "key revoked"
               and r.detail["status"] == 401 for r in refusals)
    # The decision for the event it published while valid names the key.
    eventually(lambda: any(r.actor == "cgh-ehr" for r in live.records("decision")),
               message="no decision names the key")
    # The broker recorded both edits of the keys file as it saw them.
    changes = [dict(r.detail) for r in live.records("keys_changed")]
    assert {"added": ["cgh-ehr"], "removed": [], "changed": []} in changes
    assert {"added": [], "removed": [], "changed": ["cgh-ehr"]} in changes
    assert secret not in broker.logs()   # the whole log, not only this test's part


def test_a_refused_reload_keeps_the_last_good_bundle_and_says_so(live):
    broker, secrets = live.broker, live.secrets
    admin = httpx.Client(base_url=broker.url, headers=bearer(secrets["admin"]), timeout=30)
    version = httpx.get(f"{broker.url}/readyz").json()["checks"]["policy"]
    subscriptions = broker.policy_dir / "subscriptions.yaml"
    good = subscriptions.read_text()
    subscriptions.write_text(good.replace("purpose: care_coordination", "purpose: 7", 1)
                             .replace("agency: hv-nfp", "agency: Not An Agency", 1))

    response = admin.post("/v1/admin/policy:reload")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/policy-refused"
    assert problem["version"] == version
    assert any(p.startswith("subscriptions.yaml:5: agency") for p in problem["problems"])
    assert any(p.startswith("subscriptions.yaml:7: purpose") for p in problem["problems"])

    ready = httpx.get(f"{broker.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["policy"] == version
    assert ready.json()["checks"]["policy_reload"].startswith("refused: 2 problem(s)")
    (record,) = [r for r in live.records("policy_reload_refused") if r.actor == "ops"]
    assert record.detail["problem_count"] == 2
    # The last good bundle still serves its subscribers.
    listed = httpx.get(f"{broker.url}/v1/subscriptions", headers=bearer(secrets["nfp"]))
    assert {s["id"] for s in listed.json()["subscriptions"]} >= {"hv-births"}

    subscriptions.write_text(good.replace("purpose: care_coordination",
                                          "purpose: care_coordination  # reviewed", 1)
                             + "\n  - id: hv-screenings\n    agency: hv-nfp\n"
                             "    event_types: [screening]\n    purpose: care_coordination\n"
                             "    sources: [county-general]\n    delivery: pull\n")
    applied = admin.post("/v1/admin/policy:reload")
    assert applied.status_code == 200, applied.text
    assert applied.json()["changed"] is True and applied.json()["previous"] == version
    ready = httpx.get(f"{broker.url}/readyz").json()
    assert ready["checks"]["policy"] == applied.json()["version"]
    assert "policy_reload" not in ready["checks"]
    loaded = live.records("policy_loaded")
    assert loaded[-1].actor == "ops"
    assert loaded[-1].detail["bundle_version"] == applied.json()["version"]
    listed = httpx.get(f"{broker.url}/v1/subscriptions", headers=bearer(secrets["nfp"]))
    assert "hv-screenings" in {s["id"] for s in listed.json()["subscriptions"]}


def test_sighup_reloads_the_policy_and_a_refusal_shows_in_readyz(live):
    broker = live.broker
    assert broker.proc is not None
    agencies = broker.policy_dir / "agencies.yaml"
    agencies.write_text(agencies.read_text().replace("regimes: [hipaa]", "regimes: hipaa", 1))
    broker.proc.send_signal(signal.SIGHUP)

    def refused() -> bool:
        checks = httpx.get(f"{broker.url}/readyz").json()["checks"]
        return str(checks.get("policy_reload", "")).startswith("refused")

    eventually(refused, message="readyz never reported the refused reload")
    (record,) = [r for r in live.records("policy_reload_refused") if r.actor == "sighup"]
    assert any("agencies.yaml" in p for p in record.detail["problems"])
    assert "policy reload refused" in live.logs()


def test_only_an_admin_may_reload(live):
    broker, secrets = live.broker, live.secrets
    response = httpx.post(f"{broker.url}/v1/admin/policy:reload",
                          headers=bearer(secrets["nfp"]))
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/forbidden"
