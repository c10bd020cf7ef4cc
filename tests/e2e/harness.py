"""Starts `handoff serve` as a real subprocess and talks to it over HTTP, as a user would.

`BrokerProcess` runs on either event log (`LogBackend.embedded()` or
`LogBackend.kafka(...)`) and in any role; `sibling` starts another process of the same
installation (same data directory and log) in another role, for split deployments.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"


def demo_keys() -> dict[str, str]:
    """Demo keys by agency id (plus 'auditor' and 'admin')."""
    names = {"AUDITOR": "auditor", "ADMIN": "admin"}
    keys: dict[str, str] = {}
    for line in (DEMO / "keys.env").read_text().splitlines():
        if line.startswith("HANDOFF_DEMO_KEY_"):
            name, value = line.removeprefix("HANDOFF_DEMO_KEY_").split("=", 1)
            keys[names.get(name, name.lower().replace("_", "-"))] = value
    return keys


def unlinked_demo_policy(root: Path) -> Path:
    """A copy of the demo bundle without record linkage (no linkage.yaml, so no birth
    match agreement or subscription), for tests of things linkage does not change."""
    policy = root / "policy-unlinked"
    if policy.exists():
        return policy
    shutil.copytree(DEMO / "policy", policy)
    (policy / "linkage.yaml").unlink()
    (policy / "agreements" / "vital-records.yaml").unlink()
    subs = policy / "subscriptions.yaml"
    text = subs.read_text(encoding="utf-8")
    start, end = text.index("  - id: cw-birth-matches"), text.index("  - id: eval-births")
    subs.write_text(text[:start] + text[end:], encoding="utf-8")
    return policy


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, and not handed out before by this process
    (processes launched side by side bind theirs only later)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


@dataclass(frozen=True)
class LogBackend:
    """Which event log a broker process runs on."""

    name: str = "embedded"
    bootstrap_servers: str | None = None
    topic_prefix: str = ""

    @classmethod
    def embedded(cls) -> LogBackend:
        return cls()

    @classmethod
    def kafka(cls, bootstrap_servers: str, prefix: str | None = None) -> LogBackend:
        """Kafka at `bootstrap_servers`, under a topic prefix of its own (unique unless
        given), so tests sharing one Kafka broker never see each other's topics."""
        return cls("kafka", bootstrap_servers, prefix or f"e2e-{uuid.uuid4().hex[:10]}.")

    def env(self) -> dict[str, str]:
        if self.name == "embedded":
            return {"HANDOFF_LOG__BACKEND": "embedded"}
        assert self.bootstrap_servers is not None
        return {"HANDOFF_LOG__BACKEND": "kafka",
                "HANDOFF_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap_servers,
                "HANDOFF_KAFKA__TOPIC_PREFIX": self.topic_prefix}


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class BrokerProcess:
    data_dir: Path
    policy_dir: Path = DEMO / "policy"
    keys_file: Path = DEMO / "keys.yaml"
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    backend: LogBackend = field(default_factory=LogBackend.embedded)
    role: str = "all"
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sibling(self, role: str, port: int | None = None) -> BrokerProcess:
        """Another process of this installation (same data, log and policy), not started."""
        return replace(self, role=role, port=port or free_port(), proc=None, log_path=None)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "broker.cli.main", "serve", "--policy",
                str(self.policy_dir), "--data", str(self.data_dir), "--keys",
                str(self.keys_file), "--port", str(self.port), "--role", self.role]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "HANDOFF_AUDIT__CHECKPOINT_INTERVAL_SECONDS": "1",
                **self.backend.env(), **self.env}

    def start(self, timeout: float = 60.0) -> BrokerProcess:
        """Start the process and return once `/readyz` answers 200."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> BrokerProcess:
        """Start the process without waiting (several can then start side by side)."""
        self.log_path = self.data_dir.parent / f"broker-{self.port}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                env=self.environment(),
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> BrokerProcess:
        """Wait until `/readyz` answers 200; raise with the process's log if it exits or
        the timeout passes."""
        proc = self.proc
        assert proc is not None, "launch() first"

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"broker exited early:\n{self.logs()}")
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200

        eventually(ready, timeout=timeout, interval=0.1, ignoring=(httpx.TransportError,),
                   message=lambda: f"broker not ready:\n{self.logs()}")
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def router_process(self) -> int | None:
        """The pid of the router process this `handoff serve` supervises (role `all`
        without `HANDOFF_SINGLE_PROCESS`), if one runs now."""
        if self.proc is None:
            return None
        for pid in child_pids(self.proc.pid):
            try:
                if b"broker.cli.router_child" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        return None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class Client:
    """A tiny API client holding one agency's key."""

    def __init__(self, url: str, key: str | None) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30)

    def publish(self, event_type: str, event: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/v1/events/{event_type}", json=event)

    def publish_ok(self, event_type: str, event: dict[str, Any]) -> dict[str, Any]:
        response = self.publish(event_type, event)
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    def pull_all(self, subscription: str, expect: int, timeout: float = 15.0
                 ) -> list[dict[str, Any]]:
        """Pull until at least `expect` events arrived and the feed has no more; fails
        the test if fewer arrived within `timeout` seconds."""
        events: list[dict[str, Any]] = []
        cursor = None

        def pulled_to_the_end() -> bool:
            nonlocal cursor
            params: dict[str, Any] = {"limit": 500, "wait": 1}
            if cursor:
                params["after"] = cursor
            response = self.http.get(f"/v1/subscriptions/{subscription}/events", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            events.extend(body["events"])
            cursor = body["next"]
            return len(events) >= expect and not body["events"]

        eventually(pulled_to_the_end, timeout=timeout, interval=0,
                   message=lambda: f"{subscription}: pulled {len(events)} of {expect} events")
        return events

    def close(self) -> None:
        self.http.close()
