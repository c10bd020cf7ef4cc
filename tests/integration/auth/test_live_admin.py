"""A running broker takes key changes and policy reloads without a restart, and keeps
the last good policy when a reload is refused, saying so."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.audit import SqliteAuditStore
from broker.audit.paths import audit_db_path
from broker.audit.store import AuditFilter
from broker.auth import Role
from broker.auth.keyfile import KeyFile
from broker.demo import story
from tests.e2e.harness import DEMO, REPO, BrokerProcess

pytestmark = pytest.mark.slow


def a_birth() -> dict[str, Any]:
    return story.STORY[2].build(datetime.now(UTC))


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def audit_records(data_dir: Path, kind: str) -> list[Any]:
    store = SqliteAuditStore(audit_db_path(data_dir), create=False)
    try:
        return list(store.iter_records(AuditFilter(kind=kind)))
    finally:
        store.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker.cli.main", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def live(tmp_path) -> Iterator[tuple[BrokerProcess, dict[str, str]]]:
    policy = tmp_path / "policy"
    shutil.copytree(DEMO / "policy", policy)
    keys_file = tmp_path / "keys.yaml"
    keyfile = KeyFile(keys_file)
    secrets = {
        "admin": keyfile.issue("state-integration-team", [Role.ADMIN], key_id="ops").secret,
        "nfp": keyfile.issue("hv-nfp", [Role.SUBSCRIBE], key_id="nfp").secret,
    }
    broker = BrokerProcess(data_dir=tmp_path / "data", policy_dir=policy,
                           keys_file=keys_file).start()
    try:
        yield broker, secrets
    finally:
        broker.stop()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_keys_issued_and_revoked_from_the_cli_take_effect_without_restart(live):
    broker, _ = live
    keys = str(broker.keys_file)
    issued = cli("keys", "issue", "--agency", "county-general", "--role", "publish",
                 "--id", "cgh-ehr", "--keys", keys)
    assert issued.returncode == 0, issued.stderr
    secret = issued.stdout.strip()
    assert eventually(lambda: httpx.post(f"{broker.url}/v1/events/birth", json=a_birth(),
                                         headers=bearer(secret)).status_code == 202)

    assert cli("keys", "revoke", "cgh-ehr", "--keys", keys).returncode == 0
    assert eventually(lambda: httpx.post(f"{broker.url}/v1/events/birth", json=a_birth(),
                                         headers=bearer(secret)).status_code == 401)
    refused = httpx.post(f"{broker.url}/v1/events/birth", json=a_birth(),
                         headers=bearer(secret))
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/unauthenticated"
    assert "revoked" in refused.json()["detail"]
    refusals = audit_records(broker.data_dir, "access_refused")
    assert any(r.actor == "cgh-ehr" and r.detail["reason"] == "key revoked"
               and r.detail["status"] == 401 for r in refusals)
    # The decision for the event it published while valid names the key.
    assert eventually(lambda: any(r.actor == "cgh-ehr"
                                  for r in audit_records(broker.data_dir, "decision")))
    # The broker recorded both edits of the keys file as it saw them.
    changes = [dict(r.detail) for r in audit_records(broker.data_dir, "keys_changed")]
    assert {"added": ["cgh-ehr"], "removed": [], "changed": []} in changes
    assert {"added": [], "removed": [], "changed": ["cgh-ehr"]} in changes
    assert secret not in broker.logs()


def test_a_refused_reload_keeps_the_last_good_bundle_and_says_so(live):
    broker, secrets = live
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
    (record,) = audit_records(broker.data_dir, "policy_reload_refused")
    assert record.actor == "ops" and record.detail["problem_count"] == 2
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
    loaded = audit_records(broker.data_dir, "policy_loaded")
    assert loaded[-1].actor == "ops"
    assert loaded[-1].detail["bundle_version"] == applied.json()["version"]
    listed = httpx.get(f"{broker.url}/v1/subscriptions", headers=bearer(secrets["nfp"]))
    assert "hv-screenings" in {s["id"] for s in listed.json()["subscriptions"]}


def test_sighup_reloads_the_policy_and_a_refusal_shows_in_readyz(live):
    broker, _ = live
    assert broker.proc is not None
    agencies = broker.policy_dir / "agencies.yaml"
    agencies.write_text(agencies.read_text().replace("regimes: [hipaa]", "regimes: hipaa", 1))
    broker.proc.send_signal(signal.SIGHUP)

    def refused() -> bool:
        checks = httpx.get(f"{broker.url}/readyz").json()["checks"]
        return str(checks.get("policy_reload", "")).startswith("refused")

    assert eventually(refused)
    (record,) = audit_records(broker.data_dir, "policy_reload_refused")
    assert record.actor == "sighup"
    assert any("agencies.yaml" in p for p in record.detail["problems"])
    assert "policy reload refused" in broker.logs()


def test_only_an_admin_may_reload(live):
    broker, secrets = live
    response = httpx.post(f"{broker.url}/v1/admin/policy:reload",
                          headers=bearer(secrets["nfp"]))
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/forbidden"
