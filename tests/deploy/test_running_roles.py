"""The deploy files against running processes: the roles as Compose starts them, the
image's health check, keys made by make_keys.py, and Prometheus (the real binary)
scraping with the deploy's scrape jobs while the Grafana dashboard's queries are run.

The roles run on the embedded log here (one router: the embedded log allows one); the
Compose stack runs the same commands on Kafka.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.deploy_files import (
    DASHBOARD,
    DEMO_POLICY,
    DEPLOY,
    PROMETHEUS,
    REPO,
    compose,
    handoff_services,
    load_script,
    load_yaml,
)
from tests.e2e.harness import demo_keys, free_port
from tests.system_tools import system_tool
from tests.waiting import eventually

pytestmark = pytest.mark.slow

# One process per role, as Compose names them; the second router is left out because
# the embedded log admits one router process.
SERVICES = ("api", "delivery", "router-1")


@dataclass
class RoleProcess:
    service: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60,
                path: str = "/readyz") -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text(errors='replace')}")
        return httpx.get(f"{url}{path}", timeout=1).status_code == 200

    eventually(ready, timeout=timeout, interval=0.2, ignoring=(httpx.TransportError,),
               message=lambda: f"{url} not ready:\n{log.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class Stack:
    data: Path
    pinned_public_key: Path
    made_keys: dict[str, bytes]
    roles: dict[str, RoleProcess]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("roles")
    data = root / "data"
    make_keys = load_script("make_keys.py")
    make_keys.make_keys(data / "keys")
    made = {name: (data / "keys" / name).read_bytes() for name in make_keys.KEY_FILES}
    pinned = root / "pinned-audit-signing.pem.pub"
    shutil.copy(data / "keys" / "audit-signing.pem.pub", pinned)
    services = handoff_services(compose())
    roles: dict[str, RoleProcess] = {}
    try:
        for name in SERVICES:  # api first: it creates the topics
            args = list(services[name]["command"])
            port = free_port()
            args[args.index("--port") + 1] = str(port)
            args[args.index("--host") + 1] = "127.0.0.1"
            env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
            env.update({
                "HANDOFF_LOG__BACKEND": "embedded",
                "HANDOFF_DATA_DIR": str(data),
                "HANDOFF_POLICY_DIR": str(DEMO_POLICY),
                "HANDOFF_KEYS_FILE": str(DEMO_POLICY.parent / "keys.yaml"),
                "HANDOFF_AUDIT__CHECKPOINT_INTERVAL_SECONDS": "1",
            })
            log = root / f"{name}.log"
            with log.open("ab") as out:
                proc = subprocess.Popen([sys.executable, "-m", "broker.cli.main", *args],
                                        stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                        env=env)
            roles[name] = RoleProcess(name, port, proc, log)
            _wait_ready(roles[name].url, proc, log)
        yield Stack(data, pinned, made, roles)
    finally:
        for role in reversed(list(roles.values())):
            _stop(role.proc)


def _publish_traffic(stack: Stack) -> None:
    """A birth accepted, a publish refused, and a request with a wrong key."""
    keys = demo_keys()
    api = stack.roles["api"].url
    birth = json.loads((REPO / "schemas" / "events" / "birth.example.json").read_text())
    good = {"Authorization": f"Bearer {keys['county-general']}"}
    assert httpx.post(f"{api}/v1/events/birth", json=birth, headers=good).status_code == 202
    refused = httpx.post(f"{api}/v1/events/birth", json={"not": "a birth"}, headers=good)
    assert 400 <= refused.status_code < 500
    wrong = httpx.post(f"{api}/v1/events/birth", json=birth,
                       headers={"Authorization": "Bearer hk_not_a_key"})
    assert wrong.status_code == 401


def _healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DEPLOY / "healthcheck.py"), *args],
                          capture_output=True, text=True, timeout=30, check=False)


def test_the_image_health_check_passes_for_every_ready_role(stack: Stack) -> None:
    services = handoff_services(compose())
    for name, role in stack.roles.items():
        test = services[name]["healthcheck"]["test"]
        assert test[1] == "handoff-healthcheck"
        result = _healthcheck(str(role.port), test[3])
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_the_health_check_fails_when_nothing_answers_or_the_path_is_wrong(
        stack: Stack) -> None:
    assert _healthcheck(str(free_port())).returncode == 1
    wrong = _healthcheck(str(stack.roles["api"].port), "/no-such-path")
    assert wrong.returncode == 1
    assert "HTTP 404" in wrong.stderr


def test_the_roles_sign_with_the_keys_make_keys_made(stack: Stack) -> None:
    """The broker uses the made keys as they are (never replaces them), and its audit
    checkpoints verify against the public key pinned before it started."""
    _publish_traffic(stack)

    def verified() -> dict[str, Any] | None:
        result = subprocess.run(
            [sys.executable, "-m", "broker.cli.main", "audit", "verify", "--data",
             str(stack.data), "--public-key", str(stack.pinned_public_key), "--json"],
            capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
        assert result.returncode == 0, result.stderr + result.stdout
        report: dict[str, Any] = json.loads(result.stdout)
        return report if report["signatures_checked"] > 0 else None

    report = eventually(verified, timeout=30, interval=0.5,
                        message="no signed checkpoint was verified")
    assert report["ok"] is True
    assert report["signatures_checked"] > 0
    for name, content in stack.made_keys.items():
        assert (stack.data / "keys" / name).read_bytes() == content, name


def _scrape_config(stack: Stack, tmp: Path) -> Path:
    """deploy/prometheus/prometheus.yml with each Compose service name pointed at the
    process playing it here, scraping every second."""
    config = load_yaml(PROMETHEUS)
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["global"]["scrape_timeout"] = "1s"
    ports = {name: role.port for name, role in stack.roles.items()}
    jobs = []
    for job in config["scrape_configs"]:
        if not job["job_name"].startswith("handoff-"):
            continue
        for group in job["static_configs"]:
            group["targets"] = [f"127.0.0.1:{ports[t.split(':')[0]]}"
                                for t in group["targets"] if t.split(":")[0] in ports]
        jobs.append(job)
    config["scrape_configs"] = jobs
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[str]:
    binary = system_tool("prometheus", package="prometheus")
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={_scrape_config(stack, tmp_path)}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log, path="/-/ready")
        yield url
    finally:
        _stop(proc)


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


# Panels whose queries must show data once traffic has flowed (the rest may rightly be
# empty, such as quarantined records when nothing was quarantined).
MUST_SHOW = {"Events in", "Delivery latency p99", "Router lag", "Routers up",
             "Publish refusals", "Access refusals", "Events in by type",
             "Decisions by outcome", "Delivery latency", "Publish refusals by reason",
             "Access refusals by status"}


def test_prometheus_scrapes_every_role_and_the_dashboard_shows_the_traffic(
        stack: Stack, prometheus: str) -> None:
    _publish_traffic(stack)
    targets: list[dict[str, Any]] = []

    def all_up() -> bool:
        targets[:] = httpx.get(f"{prometheus}/api/v1/targets").json()["data"]["activeTargets"]
        return len(targets) == len(stack.roles) and all(t["health"] == "up" for t in targets)

    eventually(all_up, timeout=60, interval=0.5, message=lambda: f"targets not up: {targets}")
    assert sorted(t["labels"]["role"] for t in targets) == ["api", "delivery", "router"]
    assert all(t["health"] == "up" for t in targets), targets

    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = [(p["title"], t["expr"].replace("$__rate_interval", "30s")
                .replace("$subscription", ".*").replace("$event_type", ".*"))
               for p in panels for t in p.get("targets", [])]
    assert {title for title, _ in queries} >= MUST_SHOW
    empty: list[str] = []

    def every_panel_shows_data() -> bool:
        empty[:] = [f"{title}: {expr}" for title, expr in queries
                    if title in MUST_SHOW and not _query(prometheus, expr)]
        return not empty

    eventually(every_panel_shows_data, timeout=60, interval=1,
               message=lambda: f"dashboard panels without data: {empty}")
    for _, expr in queries:
        _query(prometheus, expr)  # every query is accepted by Prometheus itself
    accepted = _query(prometheus, "sum(handoff_events_ingested_total)")
    assert float(accepted[0]["value"][1]) >= 1
