"""Soak: a steady publish rate for minutes, a webhook endpoint that fails now and then,
and a reconciliation at the end. Loopback only.

    python bench/soak.py                          # 180 s at 50 births/s
    python bench/soak.py --seconds 600 --rate 100
    python bench/soak.py --no-encryption

One `handoff serve` process (embedded log, encryption at rest on by default) with the
demo policy, except that `hv-births` is delivered by webhook to a receiver in this
script. The receiver verifies every signature and, on a cycle, answers 503 for
`--fail-seconds` out of every `--cycle-seconds` (with a short `Retry-After` now and then),
so the broker's retries and backoff run all the time. `eval-births` is followed by a
long-polling pull subscriber. Every `--sample-seconds` the script samples the broker's
resident memory (RSS, from /proc) and its router lag (`handoff_router_lag_records` on
/metrics).

At the end it stops publishing, waits for both subscribers to catch up, and prints:
memory after warm-up and at the end, router lag (max and 99th percentile of samples),
events acknowledged, delivered per subscriber, dead letters, lost events (must be 0),
webhook failures answered, and the size of each database. RSS grows while SQLite's page
caches fill as the databases grow (the audit store allows itself 64 MiB per connection),
so judge "flat" over a run long enough for the caches to be full. Timings on a shared
2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fault_kill_loop import SteadyPublisher  # noqa: E402
from broker.crypto.kek import write_new_kek  # noqa: E402
from connectors.webhook_receiver import WebhookVerificationError, verify  # noqa: E402
from connectors.webhook_signing import WebhookSecret  # noqa: E402
from tests.e2e.harness import DEMO, BrokerProcess, demo_keys  # noqa: E402

WEBHOOK_SUB = "hv-births"
PULL_SUB, PULL_OWNER = "eval-births", "state-evaluation"
WARM_UP_SECONDS = 20.0
"""Memory is compared from this point on: imports, caches and pools are settled by then."""


@dataclass
class SoakConfig:
    seconds: float = 180.0
    rate: float = 50.0
    cycle_seconds: float = 20.0
    fail_seconds: float = 4.0
    sample_seconds: float = 5.0
    encryption: bool = True
    settle_timeout: float = 120.0


class FlakyReceiver:
    """A webhook endpoint that fails `fail_seconds` of every `cycle_seconds`."""

    def __init__(self, secret: str, cycle: float, fail: float) -> None:
        self._secret = secret
        self._cycle, self._fail = cycle, fail
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self.delivered: dict[str, set[str]] = {}
        self.failures_answered = 0
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status, retry_after = receiver._answer(dict(self.headers.items()), body)
                self.send_response(status)
                if retry_after:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/births"

    def failing(self) -> bool:
        return (time.monotonic() - self._started) % self._cycle >= self._cycle - self._fail

    def _answer(self, headers: dict[str, str], body: bytes) -> tuple[int, str | None]:
        try:
            delivery = verify(headers, body, [self._secret])
        except WebhookVerificationError:
            with self._lock:
                self.bad_signatures += 1
            return 400, None
        with self._lock:
            if self.failing():
                self.failures_answered += 1
                return 503, ("1" if self.failures_answered % 5 == 0 else None)
            self.delivered.setdefault(delivery["event_id"], set()).add(delivery["decision_id"])
        return 204, None

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class PullFollower:
    """A subscriber long-polling its feed from the start, keeping every delivery."""

    def __init__(self, url: str, key: str, sub: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=40,
                                  headers={"Authorization": f"Bearer {key}"})
        self._sub = sub
        self.delivered: dict[str, set[str]] = {}
        self.deliveries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pull", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        cursor = ""
        while not self._stop.is_set():
            try:
                response = self._http.get(f"/v1/subscriptions/{self._sub}/events",
                                          params={"after": cursor, "limit": 1000, "wait": 2})
                response.raise_for_status()
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            body = response.json()
            for d in body["events"]:
                self.delivered.setdefault(d["event_id"], set()).add(d["decision_id"])
            self.deliveries += len(body["events"])
            cursor = body["next"]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._http.close()


@dataclass
class Sample:
    at: float
    rss_kib: int
    lag: float


@dataclass
class SoakReport:
    seconds: float = 0.0
    acknowledged: int = 0
    samples: list[Sample] = field(default_factory=list)
    delivered: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    inconsistent: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    failures_answered: int = 0
    bad_signatures: int = 0
    caught_up_seconds: float = 0.0
    disk_mib: dict[str, float] = field(default_factory=dict)
    """Sizes of the data directory's databases at the end (with their WAL files)."""

    @property
    def sound(self) -> bool:
        return (not any(self.lost.values()) and not any(self.inconsistent.values())
                and self.bad_signatures == 0)

    def memory(self) -> tuple[int, int, int]:
        """RSS in KiB: first sample after warm-up, last sample, highest."""
        settled = [s for s in self.samples if s.at >= WARM_UP_SECONDS] or self.samples
        if not settled:
            return 0, 0, 0
        return settled[0].rss_kib, settled[-1].rss_kib, max(s.rss_kib for s in settled)

    def lines(self) -> list[str]:
        start, end, peak = self.memory()
        lags = sorted(s.lag for s in self.samples)
        p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else 0.0
        growth = (end - start) / start * 100 if start else 0.0
        out = [
            f"ran {self.seconds:.0f} s; events acknowledged {self.acknowledged} "
            f"({self.acknowledged / max(self.seconds, 1):.0f}/s)",
            f"broker RSS: {start / 1024:.1f} MiB after warm-up, {end / 1024:.1f} MiB at the "
            f"end ({growth:+.1f}%), peak {peak / 1024:.1f} MiB; {len(self.samples)} samples",
            f"router lag (records): max {max(lags, default=0):.0f}, p99 {p99:.0f}",
            f"webhook: {self.failures_answered} failures answered, {self.dead_letters} dead "
            f"letters, {self.bad_signatures} bad signatures",
            f"caught up {self.caught_up_seconds:.1f} s after publishing stopped",
            "on disk: " + ", ".join(f"{name} {mib:.1f} MiB"
                                    for name, mib in sorted(self.disk_mib.items())),
        ]
        for sub in sorted(self.delivered):
            out.append(f"{sub:<14} delivered {self.delivered[sub]} events, lost "
                       f"{self.lost[sub]}, inconsistent duplicates {self.inconsistent[sub]}")
        out.append("RESULT: " + ("no event lost" if self.sound else "FAILED"))
        return out


def soak_policy(root: Path, url: str) -> Path:
    """The demo bundle, with `hv-births` delivered by webhook to `url`."""
    policy = root / "policy"
    shutil.copytree(DEMO / "policy", policy)
    path = policy / "subscriptions.yaml"
    doc = yaml.safe_load(path.read_text())
    for entry in doc["subscriptions"]:
        if entry["id"] == WEBHOOK_SUB:
            entry["delivery"] = {"mode": "webhook", "url": url}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return policy


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def router_lag(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("handoff_router_lag_records "):
            return float(line.split()[1])
    return 0.0


def dead_letter_count(url: str, key: str) -> int:
    response = httpx.get(f"{url}/v1/subscriptions/{WEBHOOK_SUB}/dead-letters",
                         headers={"Authorization": f"Bearer {key}"}, params={"limit": 1000},
                         timeout=30)
    if response.status_code != 200:
        return -1
    body = response.json()
    return len(body.get("dead_letters", body.get("items", [])))


def run_soak(config: SoakConfig, workdir: Path, progress: bool = False) -> SoakReport:
    keys = demo_keys()
    secret = WebhookSecret.generate().encoded()
    receiver = FlakyReceiver(secret, config.cycle_seconds, config.fail_seconds)
    env = {
        "HANDOFF_WEBHOOKS__SECRETS": json.dumps({WEBHOOK_SUB: [secret]}),
        # A compressed schedule: about 15 s of retries, longer than a failure window.
        "HANDOFF_WEBHOOKS__SCHEDULE_SECONDS": "[0, 0.25, 0.5, 1, 2, 4, 8]",
        "HANDOFF_WEBHOOKS__MAX_RETRY_AFTER_SECONDS": "2",
        "HANDOFF_AUDIT__CHECKPOINT_INTERVAL_SECONDS": "10",
    }
    if config.encryption:
        kek = workdir / "kek"
        write_new_kek(kek)
        env |= {"HANDOFF_ENCRYPTION__ENABLED": "true",
                "HANDOFF_ENCRYPTION__KEK_FILE": str(kek)}
    broker = BrokerProcess(data_dir=workdir / "data",
                           policy_dir=soak_policy(workdir, receiver.url), env=env).start()
    assert broker.proc is not None
    report = SoakReport()
    follower = PullFollower(broker.url, keys[PULL_OWNER], PULL_SUB)
    publisher = SteadyPublisher(broker.url, keys["county-general"], config.rate)
    started = time.monotonic()
    publisher.start()
    try:
        next_sample = started
        while (now := time.monotonic()) - started < config.seconds:
            if now >= next_sample:
                metrics = httpx.get(f"{broker.url}/metrics", timeout=10).text
                sample = Sample(now - started, rss_kib(broker.proc.pid), router_lag(metrics))
                report.samples.append(sample)
                next_sample += config.sample_seconds
                if progress:
                    print(f"  {sample.at:5.0f} s  rss {sample.rss_kib / 1024:6.1f} MiB  "
                          f"lag {sample.lag:5.0f}  acked {len(publisher.acked)}  "
                          f"webhook {len(receiver.delivered)}  pull {len(follower.delivered)}",
                          flush=True)
            time.sleep(0.2)
        if not publisher.drain(config.settle_timeout):
            raise RuntimeError("the publisher could not get every event acknowledged")
        stopped = time.monotonic()
        report.seconds = stopped - started
        acked = set(publisher.acked)
        report.acknowledged = len(acked)
        deadline = stopped + config.settle_timeout
        while time.monotonic() < deadline and not (
                acked <= receiver.delivered.keys() and acked <= follower.delivered.keys()):
            time.sleep(0.2)
        report.caught_up_seconds = time.monotonic() - stopped
        report.samples.append(Sample(time.monotonic() - started, rss_kib(broker.proc.pid),
                                     router_lag(httpx.get(f"{broker.url}/metrics").text)))
        report.dead_letters = dead_letter_count(broker.url, keys["hv-nfp"])
    finally:
        follower.stop()
        broker.stop()
        receiver.stop()
    for sub, seen in ((WEBHOOK_SUB, receiver.delivered), (PULL_SUB, follower.delivered)):
        report.delivered[sub] = len(seen.keys() & acked)
        report.lost[sub] = len(acked - seen.keys())
        report.inconsistent[sub] = sum(1 for ids in seen.values() if len(ids) > 1)
    report.failures_answered = receiver.failures_answered
    report.bad_signatures = receiver.bad_signatures
    report.disk_mib = database_sizes(workdir / "data")
    return report


def database_sizes(data: Path) -> dict[str, float]:
    """MiB per database of the data directory, its -wal file included. The broker's RSS
    grows with these while SQLite page caches fill (the audit store allows 64 MiB per
    connection), which is the first thing to rule out when memory is not flat."""
    sizes: dict[str, float] = {}
    for path in data.glob("*.db*"):
        name = path.name.split(".db")[0] + ".db"
        sizes[name] = sizes.get(name, 0.0) + path.stat().st_size / 2**20
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--rate", type=float, default=50.0, help="births offered per second")
    parser.add_argument("--cycle-seconds", type=float, default=20.0)
    parser.add_argument("--fail-seconds", type=float, default=4.0)
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--no-encryption", dest="encryption", action="store_false")
    args = parser.parse_args()
    config = SoakConfig(seconds=args.seconds, rate=args.rate, cycle_seconds=args.cycle_seconds,
                        fail_seconds=args.fail_seconds, sample_seconds=args.sample_seconds,
                        encryption=args.encryption)
    print(f"soak: {config.seconds:g} s at {config.rate:g} births/s; webhook fails "
          f"{config.fail_seconds:g} s of every {config.cycle_seconds:g} s; encryption "
          f"{'on' if config.encryption else 'off'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="handoff-soak-") as tmp:
        report = run_soak(config, Path(tmp), progress=True)
    print("\n".join(report.lines()))
    sys.exit(0 if report.sound else 1)


if __name__ == "__main__":
    main()
