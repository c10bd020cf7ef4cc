"""`handoff demo`: a broker with the demo agencies, a morning of events, and a live view
of what each subscriber receives, what was withheld and why; then a referral nobody acts
on, flagged overdue once the demo's clock (which only the referral timers and the later
events' dates run on) jumps ahead."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import zoneinfo
from datetime import UTC, datetime, timedelta
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
from broker.cli.serve_cmd import configure_logging, exit_if_port_taken
from broker.clock import now_ms
from broker.config import Settings, load_settings
from broker.demo.story import JOLENE, LATER, STORY, Step, TimePasses

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


class DemoClock:
    """Real time plus a jump the demo makes: the referral timers run on it."""

    def __init__(self) -> None:
        self.ahead_ms = 0

    def __call__(self) -> int:
        return now_ms() + self.ahead_ms

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(milliseconds=self.ahead_ms)


class Narrator:
    """Publishes the story and shows, per subscription, what arrived and why."""

    def __init__(self, url: str, keys: dict[str, str], subscriptions: dict[str, Any],
                 clock: DemoClock, zone: str = "UTC",
                 birth_match_from: tuple[str, ...] = ()) -> None:
        self.url = url
        self.keys = keys
        self.subscriptions = subscriptions
        self.clock = clock
        self.zone = zoneinfo.ZoneInfo(zone)
        self.birth_match_from = birth_match_from
        """Agencies whose births are checked against child welfare's birth match list."""
        self.cursors: dict[str, str | None] = dict.fromkeys(subscriptions)
        self.audit_seq = 0
        self.published_at = 0.0
        self.http = httpx.Client(base_url=url, timeout=30)

    def _as(self, agency: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[agency]}"}

    def play(self, step: Step | TimePasses, pace: float) -> None:
        if isinstance(step, TimePasses):
            self.time_passes(step)
            return
        console.print(f"\n[bold]{escape(step.narration)}[/bold]")
        event = step.build(self.clock.now())
        self.published_at = time.monotonic()
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
                    if step.event_type in sub.event_types
                    and (sub.sources is None or step.agency in sub.sources)]
        checked = step.event_type == "birth" and step.agency in self.birth_match_from
        decisions = self._decisions_for(event["event_id"], len(expected),
                                        settle=1.5 if checked else 0.0)
        for record in decisions:
            if record["detail"].get("event_type") == "birth_match":
                console.print("  [magenta]birth match:[/magenta] the mother is on child "
                              "welfare's list; the broker makes a birth_match event")
            self._show(record)
        if step.event_type == "watch_list_entry":
            console.print("  [dim]restricted: kept for birth match, sent to no one[/dim]")
        elif checked and not any(r["detail"].get("event_type") == "birth_match"
                                 for r in decisions):
            console.print("  [magenta]birth match:[/magenta] no parent on child welfare's "
                          "list; child welfare receives nothing")
        elif expected and not decisions:
            console.print("  [dim]no subscription matched[/dim]")
        time.sleep(pace)

    def _decisions_for(self, event_id: str, expected: int, settle: float = 0.0
                       ) -> list[dict[str, Any]]:
        """The decisions about this event, and any birth match it made (which have their
        own event ids): waits for `expected` of them, or `settle` seconds."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 5
        settled = time.monotonic() + settle
        while time.monotonic() < deadline and (len(found) < expected
                                               or time.monotonic() < settled):
            page = self.http.get("/v1/audit/decisions", params={"after": self.audit_seq},
                                 headers=self._as("auditor")).json()
            for record in page["records"]:
                self.audit_seq = max(self.audit_seq, record["seq"])
                if (record["event_id"] == event_id
                        or record["detail"].get("event_type") == "birth_match"):
                    # The router writes the decision, then the delivery, in one batch.
                    record["seen_after"] = time.monotonic() - self.published_at
                    found.append(record)
            time.sleep(0.05)
        return found

    def linkage_summary(self) -> None:
        """Who the morning's agency records turned out to be (record linkage)."""
        if "steward" not in self.keys:
            return
        reviews = self.http.get("/v1/linkage/reviews", headers=self._as("steward"))
        if reviews.status_code != 200:
            return
        jolene = self.http.get(f"/v1/linkage/records/county-general/{JOLENE}",
                               headers=self._as("steward"))
        console.print("\n[bold]Record linkage[/bold]: every event's subjects were "
                      "resolved to Handoff person ids before policy ran.")
        if jolene.status_code == 200:
            agencies = sorted({r["agency"] for r in jolene.json()["records"]})
            console.print(f"  Jolene is one person across {len(agencies)} agencies' "
                          f"records ({', '.join(agencies)}); her consents and her "
                          "accounting of disclosures follow the person.")
        console.print(f"  {len(reviews.json()['reviews'])} uncertain match(es) wait for a "
                      "data steward (GET /v1/linkage/reviews).")

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
        console.print(f"{head}: [green]delivered[/green] [dim]("
                      f"{record['seen_after']:.2f} s after it was published)[/dim]")
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
            # The notice is the obligation: shown whole, wrapped at word boundaries.
            console.print(f"     [magenta]obligation[/magenta] {obligation.get('id')}: "
                          f"{escape(str(obligation.get('text', '')))}")


    def time_passes(self, step: TimePasses) -> None:
        """Move the demo clock, then show the overdue alerts the hotline receives (and
        that NFP receives the same)."""
        self.clock.ahead_ms += step.days * 86_400_000
        console.print(f"\n[bold]{escape(step.narration)}[/bold]")
        if step.days:
            console.print(f"  [yellow]the demo's clock now reads "
                          f"{self._local(self.clock.now())}: {step.days} days ahead of real "
                          "time (only the referral timers and the dates of the events that "
                          "follow use it)[/yellow]")
        alerts = self._drain("cw-handoff-alerts", step.alerts)
        copies = self._drain("hv-handoff-alerts", step.alerts)
        for alert in alerts:
            data = alert["data"]
            colour = "red" if data["alert"] == "RAISED" else "green"
            due = self._local(datetime.fromisoformat(data["due_at"].replace("Z", "+00:00")))
            what = f"{_MISSED[data['service_level']]} within {data['within']} (due {due})"
            if data["alert"] == "CLEARED" and data.get("settled_at"):
                settled = datetime.fromisoformat(data["settled_at"].replace("Z", "+00:00"))
                what += f", settled {self._local(settled)}"
            console.print(f"  → [bold]cw-handoff-alerts[/bold] (cw-hotline): [{colour}]"
                          f"handoff_overdue {data['alert']}[/{colour}] referral "
                          f"{data['referral_id']}: {escape(what)}")
        if len(alerts) < step.alerts:
            console.print(f"  [red]expected {step.alerts} alerts, saw {len(alerts)}[/red]")
        console.print(f"  → [bold]hv-handoff-alerts[/bold] (hv-nfp): the same "
                      f"{len(copies)} alert(s), to the receiving program")

    def _drain(self, sub_id: str, expect: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """At least `expect` new events of one subscription (or what came in `timeout`)."""
        sub = self.subscriptions[sub_id]
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < expect and time.monotonic() < deadline:
            params: dict[str, Any] = {"limit": 100, "wait": 1}
            if self.cursors[sub_id]:
                params["after"] = self.cursors[sub_id]
            body = self.http.get(f"/v1/subscriptions/{sub_id}/events", params=params,
                                 headers=self._as(sub.agency)).json()
            self.cursors[sub_id] = body.get("next", self.cursors[sub_id])
            found += body.get("events", [])
        return found

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%a %d %b %H:%M %Z")


_MISSED = {"RECEIVED": "not received", "ACCEPTED": "not accepted",
           "FIRST_CONTACT": "no first contact", "ENROLLED": "not enrolled",
           "OUTCOME": "no outcome"}


@app.command("demo")
def demo(
    port: int = typer.Option(8080, help="TCP port for the API"),
    data: Path | None = typer.Option(
        None, help="data directory (default: a new temporary one)"),
    pace: float = typer.Option(0.8, help="seconds between story steps"),
    exit_after: bool = typer.Option(False, "--exit", help="stop after the story"),
) -> None:
    """Run the broker with the demo agencies and play a morning of events.

    Without --data the demo's data lives in a temporary directory, removed when it
    stops. Exit codes: 0 done, 2 for a configuration problem, 3 when the port is already
    in use.
    """
    configure_logging("WARNING")
    clock = DemoClock()
    demo_dir = find_demo_dir()
    data_dir = data or Path(tempfile.mkdtemp(prefix="handoff-demo-"))
    try:
        with exit_on_config_error():
            settings = load_settings(policy_dir=demo_dir / "policy", data_dir=data_dir,
                                     keys_file=demo_dir / "keys.yaml")
        # The demo's webhook subscriptions point at example.org: their decisions are
        # shown, nothing is sent (and so no webhook secrets are needed).
        settings = settings.model_copy(update={
            "api": settings.api.model_copy(update={"port": port}),
            "webhooks": settings.webhooks.model_copy(update={"enabled": False})})
        exit_if_port_taken(settings.api.host, port)
        _run_demo(settings, demo_dir, temporary=data is None, pace=pace,
                  exit_after=exit_after, clock=clock)
    finally:
        if data is None:
            shutil.rmtree(data_dir, ignore_errors=True)


def _run_demo(settings: Settings, demo_dir: Path, *, temporary: bool, pace: float,
              exit_after: bool, clock: DemoClock) -> None:
    data_dir, port = settings.data_dir, settings.api.port
    with exit_on_config_error():
        broker = build_broker(settings, timer_clock=clock)
    broker.start()
    server = GracefulServer(uvicorn.Config(create_app(broker.api), host=settings.api.host,
                                           port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="handoff-api", daemon=True)
    thread.start()
    url = f"http://{settings.api.host}:{port}"
    # The server runs in a thread, where it cannot take signals: SIGTERM ends the story
    # here, as Ctrl-C does.
    with stopping_on_sigterm(interrupt):
        _play(url, demo_dir, data_dir, broker, thread, exit_after, pace, server, clock,
              temporary)


def _play(url: str, demo_dir: Path, data_dir: Path, broker: Broker, thread: threading.Thread,
          exit_after: bool, pace: float, server: uvicorn.Server, clock: DemoClock,
          temporary: bool) -> None:
    try:
        _wait_ready(url)
        console.print(f"[bold]Handoff demo[/bold] — broker at {url}, data in {data_dir}, "
                      f"policy {broker.policy.current.version}")
        bundle = broker.policy.current.bundle
        zone = next((c.timezone for c in bundle.calendars.values()), "UTC")
        matched = bundle.linkage.birth_match if bundle.linkage is not None else None
        narrator = Narrator(url, read_keys(demo_dir), bundle.subscriptions, clock, zone,
                            matched.births_from if matched is not None else ())
        for step in STORY:
            narrator.play(step, pace)
        console.print("\n[bold]Later.[/bold]")
        for later in LATER:
            narrator.play(later, pace)
        narrator.linkage_summary()
        console.print(
            f"\n[bold]The story is over; the broker keeps running.[/bold]\n"
            f"  OpenAPI docs:      {url}/docs\n"
            f"  Console:           {url}/console (sign in with HANDOFF_DEMO_KEY_AUDITOR)\n"
            f"  API keys:          {demo_dir / 'keys.env'} (demo only)\n"
            f"  Verify the audit:  handoff audit verify --data {data_dir}\n"
            + ("  (a temporary directory, removed when the demo stops; --data DIR keeps "
               "it)\n" if temporary else "") +
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
