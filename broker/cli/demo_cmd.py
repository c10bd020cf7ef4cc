"""`handoff demo`: a broker with the demo agencies, a morning of events, and a live view
of what each subscriber receives, what was withheld and why."""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer
import uvicorn
from rich.console import Console
from rich.markup import escape

from broker.api.app import create_app
from broker.bootstrap import Broker, build_broker
from broker.cli.errors import exit_on_config_error
from broker.cli.graceful import (
    GracefulServer,
    ignore_while_stopping,
    interrupt,
    stopping_on_sigterm,
)
from broker.cli.serve_cmd import configure_logging
from broker.config import load_settings
from broker.demo.story import STORY, Step

app = typer.Typer()
console = Console(highlight=False)


def find_demo_dir() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base / "examples" / "demo"
        if (candidate / "policy").is_dir():
            return candidate
    raise typer.BadParameter("examples/demo not found; run the demo from the repository")


def read_keys(demo: Path) -> dict[str, str]:
    names = {"AUDITOR": "auditor", "ADMIN": "admin"}
    keys: dict[str, str] = {}
    for line in (demo / "keys.env").read_text(encoding="utf-8").splitlines():
        if line.startswith("HANDOFF_DEMO_KEY_"):
            name, value = line.removeprefix("HANDOFF_DEMO_KEY_").split("=", 1)
            keys[names.get(name, name.lower().replace("_", "-"))] = value
    return keys


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


class Narrator:
    """Publishes the story and shows, per subscription, what arrived and why."""

    def __init__(self, url: str, keys: dict[str, str], subscriptions: dict[str, Any]) -> None:
        self.url = url
        self.keys = keys
        self.subscriptions = subscriptions
        self.cursors: dict[str, str | None] = dict.fromkeys(subscriptions)
        self.audit_seq = 0
        self.http = httpx.Client(base_url=url, timeout=30)

    def _as(self, agency: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[agency]}"}

    def play(self, step: Step, pace: float) -> None:
        console.print(f"\n[bold]{escape(step.narration)}[/bold]")
        event = step.build(datetime.now(UTC))
        response = self.http.post(f"/v1/events/{step.event_type}", json=event,
                                  headers=self._as(step.agency))
        if response.status_code != 202:
            detail = escape(response.json().get("detail", ""))
            if step.refused:
                console.print(f"  [dim]{step.agency} tried to publish {step.event_type}[/dim]")
                console.print(f"  [yellow]refused ({response.status_code}), as it must be:"
                              f"[/yellow] {detail}")
            else:
                console.print(f"  [red]refused {response.status_code}: {detail}[/red]")
            time.sleep(pace)
            return
        console.print(f"  [dim]{step.agency} published {step.event_type} "
                      f"{event['event_id'][:8]}…[/dim]")
        expected = [s for s, sub in self.subscriptions.items()
                    if step.event_type in sub.event_types]
        decisions = self._decisions_for(event["event_id"], len(expected))
        for record in decisions:
            self._show(record)
        if expected and not decisions:
            console.print("  [dim]no subscription matched[/dim]")
        time.sleep(pace)

    def _decisions_for(self, event_id: str, expected: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        while len(found) < expected and time.monotonic() < deadline:
            page = self.http.get("/v1/audit/decisions", params={"after": self.audit_seq},
                                 headers=self._as("auditor")).json()
            for record in page["records"]:
                self.audit_seq = max(self.audit_seq, record["seq"])
                if record["event_id"] == event_id:
                    found.append(record)
            if len(found) < expected:
                time.sleep(0.05)
        return found

    def _received(self, sub_id: str, decision_id: str) -> dict[str, Any] | None:
        sub = self.subscriptions[sub_id]
        params: dict[str, Any] = {"limit": 100}
        if self.cursors[sub_id]:
            params["after"] = self.cursors[sub_id]
        body = self.http.get(f"/v1/subscriptions/{sub_id}/events", params=params,
                             headers=self._as(sub.agency)).json()
        self.cursors[sub_id] = body.get("next", self.cursors[sub_id])
        for delivered in body.get("events", []):
            if delivered["decision_id"] == decision_id:
                return dict(delivered)
        return None

    def _show(self, record: dict[str, Any]) -> None:
        detail = record["detail"]
        sub_id = record["subscription"]
        head = f"  → [bold]{sub_id}[/bold] ({record['recipient']}, {detail.get('purpose')})"
        if record["outcome"] != "permit":
            console.print(f"{head}: [red]DENIED[/red] — {escape(str(detail.get('deny_reason')))}")
            if detail.get("agreement_id"):
                # Why every field was withheld, one line per distinct reason.
                why = dict.fromkeys(f["reason"] for f in detail.get("fields", [])
                                    if f["status"] == "withheld"
                                    and f["reason"] != detail.get("deny_reason")
                                    and not f["reason"].startswith("not in agreement"))
                for reason in list(why)[:2]:
                    console.print(f"     [dim]{escape(reason)}[/dim]")
            return
        delivered = self._received(sub_id, record["decision_id"])
        values = _flatten(delivered["data"]) if delivered else {}
        console.print(f"{head}: [green]delivered[/green]")
        shown = [f"{p}={values.get(p)!s}" for p in detail.get("released", [])
                 if p in values and p not in ("event_id", "occurred_at")]
        if shown:
            console.print("     [green]received[/green] " + escape(", ".join(shown)))
        for f in detail.get("fields", []):
            if f["status"] == "transformed":
                console.print(f"     [yellow]transformed[/yellow] {f['path']} "
                              f"({f['transform']}) = {escape(str(values.get(f['path'])))}")
        withheld = [f for f in detail.get("fields", []) if f["status"] == "withheld"]
        reasons: dict[str, list[str]] = {}
        for f in withheld:
            reasons.setdefault(f["reason"], []).append(f["path"])
        for reason, paths in reasons.items():
            console.print(f"     [red]withheld[/red] {escape(', '.join(paths))} "
                          f"[dim]— {escape(reason)}[/dim]")
        for obligation in detail.get("obligations", []):
            console.print(f"     [magenta]obligation[/magenta] {obligation.get('id')}: "
                          f"{escape(str(obligation.get('text', ''))[:110])}…")


@app.command("demo")
def demo(
    port: int = typer.Option(8080, help="TCP port for the API"),
    data: Path | None = typer.Option(
        None, help="data directory (default: a new temporary one)"),
    pace: float = typer.Option(0.8, help="seconds between story steps"),
    exit_after: bool = typer.Option(False, "--exit", help="stop after the story"),
) -> None:
    """Run the broker with the demo agencies and play a morning of events."""
    configure_logging("WARNING")
    demo_dir = find_demo_dir()
    data_dir = data or Path(tempfile.mkdtemp(prefix="handoff-demo-"))
    with exit_on_config_error():
        settings = load_settings(policy_dir=demo_dir / "policy", data_dir=data_dir,
                                 keys_file=demo_dir / "keys.yaml")
        settings = settings.model_copy(update={"api": settings.api.model_copy(
            update={"port": port})})
        broker = build_broker(settings)
    broker.start()
    server = GracefulServer(uvicorn.Config(create_app(broker.api), host=settings.api.host,
                                           port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="handoff-api", daemon=True)
    thread.start()
    url = f"http://{settings.api.host}:{port}"
    # The server runs in a thread, where it cannot take signals: SIGTERM ends the story
    # here, as Ctrl-C does.
    with stopping_on_sigterm(interrupt):
        _play(url, demo_dir, data_dir, broker, thread, exit_after, pace, server)


def _play(url: str, demo_dir: Path, data_dir: Path, broker: Broker, thread: threading.Thread,
          exit_after: bool, pace: float, server: uvicorn.Server) -> None:
    try:
        _wait_ready(url)
        console.print(f"[bold]Handoff demo[/bold] — broker at {url}, data in {data_dir}, "
                      f"policy {broker.policy.current.version}")
        narrator = Narrator(url, read_keys(demo_dir), broker.policy.current.bundle.subscriptions)
        for step in STORY:
            narrator.play(step, pace)
        console.print(
            f"\n[bold]The story is over; the broker keeps running.[/bold]\n"
            f"  OpenAPI docs:      {url}/docs\n"
            f"  Console:           {url}/console (sign in with HANDOFF_DEMO_KEY_AUDITOR)\n"
            f"  API keys:          {demo_dir / 'keys.env'} (demo only)\n"
            f"  Verify the audit:  handoff audit verify --data {data_dir}\n"
            f"  Metrics:           {url}/metrics")
        if not exit_after:
            console.print("Press Ctrl-C to stop.")
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        with stopping_on_sigterm(ignore_while_stopping):
            server.should_exit = True
            thread.join(10)
            broker.stop()


def _wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise typer.Exit(1)
