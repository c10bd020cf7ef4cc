"""Repeated `kill -9` of the broker under a steady publish load, then a reconciliation.

    python bench/fault_kill_loop.py                       # 10 kills, embedded log
    python bench/fault_kill_loop.py --kills 30 --rate 100
    python bench/fault_kill_loop.py --split               # api+delivery and router processes
    python bench/fault_kill_loop.py --single-process      # handoff serve --single-process
    python bench/fault_kill_loop.py --backend kafka       # split, on a Tansu broker
    python bench/fault_kill_loop.py --no-encryption       # encryption at rest is on by default

A publisher sends births at a steady rate, one request each, as an agency system would:
an event counts as acknowledged when the broker answered 202; anything unanswered
(refused connection, cut response, 503) is re-sent with the same `event_id` until it is.
Meanwhile a broker process is killed with SIGKILL after a random time up and started
again on the same data directory and port. By default the victim is drawn from `handoff
serve` (`all`, whose router process dies with it) and the router process it supervises
(`all:router`, which it starts again itself); with `--single-process`, one process.
With `--split` (always on Kafka) the victim is drawn from the api+delivery process and
the router process; on Kafka the Tansu broker is also frozen (SIGSTOP, then SIGCONT
after a few seconds) in some rounds. Tansu is not
killed: the build the tests use keeps its log in memory only, so killing it loses every
topic by design; against Apache Kafka (deploy/) a broker kill is the same experiment.
At the end the publisher drains, and the script reconciles, for every subscription a
birth is routed to:

- lost: acknowledged events never delivered (must be 0);
- unaudited: deliveries whose decision is not in the audit log (must be 0);
- undecided: acknowledged events with no audit decision for the subscription (must be 0);
- duplicates: deliveries beyond the first of an event, each identifiable because it
  repeats the event's `event_id` and `decision_id` (a different decision id for the same
  event would be reported as inconsistent);
- the audit chain verifies (`handoff audit verify`, against Kafka on that backend);
- audit repeats: decision records written again by a replay (same decision id).

Figures depend on the machine and on what else runs on it; on a shared 2-core machine
restart times vary by seconds.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fault_reconcile import (  # noqa: E402
    KillLoopReport,
    audited_decisions,
    pull_everything,
    reconcile,
)
from broker.crypto.kek import write_new_kek  # noqa: E402
from broker.demo import story  # noqa: E402
from tests.e2e.harness import BrokerProcess, LogBackend, demo_keys  # noqa: E402
from tests.kafka_broker import TansuBroker  # noqa: E402

SUBSCRIBERS = {"eval-births": "state-evaluation", "hv-births": "hv-nfp"}
"""Subscriptions county-general births are routed to in the demo policy, and their owners."""


@dataclass
class KillLoopConfig:
    kills: int = 10
    rate: float = 50.0
    """Births offered per second."""
    min_up: float = 1.0
    max_up: float = 4.0
    """Seconds the broker runs (once ready) before the next kill, drawn uniformly."""
    encryption: bool = True
    backend: str = "embedded"
    split: bool = False
    """Run api+delivery and the router as separate processes (always on Kafka)."""
    router_process: bool = True
    """`handoff serve` as by default: the router in a process it supervises (False:
    `--single-process`)."""
    freeze_seconds: float = 3.0
    """On Kafka: how long a frozen Tansu stays stopped."""
    seed: int | None = None
    settle_timeout: float = 120.0


class SteadyPublisher:
    """Offers births at a fixed rate and re-sends each until it is acknowledged.

    `workers` threads share the rate, each with its own connection and its own queue of
    unacknowledged events, so one slow request does not hold the rate down. While the
    broker is unreachable the offering pauses rather than piling up a burst."""

    def __init__(self, url: str, key: str, rate: float, workers: int = 4) -> None:
        self._url, self._key = url, key
        self._interval = workers / rate
        self._lock = threading.Lock()
        self.acked: dict[str, int] = {}
        self.acked_as_duplicate = 0
        self.resent = 0
        self.refused: list[str] = []
        self._offering = threading.Event()
        self._offering.set()
        self._threads = [threading.Thread(target=self._run, args=(n * self._interval / workers,),
                                          name=f"publisher-{n}", daemon=True)
                         for n in range(workers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def drain(self, timeout: float) -> bool:
        """Stop offering new events; wait until every offered event is acknowledged."""
        self._offering.clear()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.refused:
            raise RuntimeError(f"publishes refused: {self.refused[:3]}")
        return not any(thread.is_alive() for thread in self._threads)

    def _run(self, offset: float) -> None:
        http = httpx.Client(base_url=self._url, timeout=5,
                            headers={"Authorization": f"Bearer {self._key}"})
        pending: list[dict[str, Any]] = []
        next_offer = time.monotonic() + offset
        make = story.STORY[2].build
        while True:
            now = time.monotonic()
            if self._offering.is_set() and now >= next_offer:
                pending.append(make(datetime.now(UTC)))
                next_offer += self._interval
                if now - next_offer > 1.0:
                    next_offer = now   # after an outage, carry on at the rate, not a burst
            if not pending:
                if not self._offering.is_set():
                    http.close()
                    return
                time.sleep(max(0.0, min(next_offer - time.monotonic(), 0.05)))
                continue
            event = pending[0]
            try:
                response = http.post("/v1/events/birth", json=event)
            except httpx.TransportError:
                response = None   # the broker is down, restarting, or its log is frozen
            if response is not None and response.status_code == 202:
                pending.pop(0)
                duplicate = bool(response.json().get("duplicate"))
                with self._lock:
                    self.acked[event["event_id"]] = int(time.time() * 1000)
                    self.acked_as_duplicate += duplicate
            elif response is None or response.status_code in (429, 500, 502, 503, 504):
                with self._lock:
                    self.resent += 1
                time.sleep(0.05)
            else:
                with self._lock:
                    self.refused.append(f"{response.status_code} {response.text[:200]}")
                pending.pop(0)


class Deployment:
    """The broker processes of one installation, and the faults that can hit them."""

    def __init__(self, config: KillLoopConfig, workdir: Path) -> None:
        env: dict[str, str] = {}
        if config.encryption:
            kek = workdir / "kek"
            write_new_kek(kek)
            env = {"HANDOFF_ENCRYPTION__ENABLED": "true",
                   "HANDOFF_ENCRYPTION__KEK_FILE": str(kek)}
        env["HANDOFF_ROUTER_PROCESS"] = "1" if config.router_process else "0"
        self.kafka: TansuBroker | None = None
        backend = LogBackend.embedded()
        if config.backend == "kafka":
            self.kafka = TansuBroker().start()
            backend = LogBackend.kafka(self.kafka.bootstrap_servers)
        self.data = workdir / "data"
        self.backend = backend
        self.freeze_seconds = config.freeze_seconds
        base = BrokerProcess(data_dir=self.data, env=env, backend=backend)
        split = config.split or config.backend == "kafka"
        roles = ["api,delivery", "router"] if split else ["all"]
        self.processes = {role: base.sibling(role) for role in roles}
        # The router first, so the api process finds its topics and consumer group.
        for role in reversed(roles):
            self.processes[role].start()

    @property
    def front(self) -> BrokerProcess:
        """The process that takes publishes and serves subscribers and auditors."""
        return self.processes.get("api,delivery") or self.processes["all"]

    def victims(self) -> list[str]:
        # With --router-process, `all` runs its router in a supervised process of its
        # own: a victim too.
        supervised = [f"{role}:router" for role, process in self.processes.items()
                      if process.router_process() is not None]
        return [*self.processes, *supervised, *(["kafka-freeze"] if self.kafka else [])]

    def strike(self, victim: str) -> float:
        """Inject one fault; returns the seconds until the victim was serving again."""
        began = time.monotonic()
        if victim == "kafka-freeze":
            pid = self._tansu_pid()
            os.kill(pid, signal.SIGSTOP)
            time.sleep(self.freeze_seconds)
            os.kill(pid, signal.SIGCONT)
            return time.monotonic() - began
        if victim.endswith(":router"):
            return self._kill_supervised_router(self.processes[victim.split(":")[0]], began)
        process = self.processes[victim]
        process.kill()
        self.processes[victim] = process.sibling(victim, port=process.port).start()
        return time.monotonic() - began

    @staticmethod
    def _kill_supervised_router(process: BrokerProcess, began: float) -> float:
        """`kill -9` of the router process `handoff serve` supervises; returns the
        seconds until its parent had started another and was ready again."""
        victim = process.router_process()
        if victim is None:
            raise RuntimeError("no supervised router process to kill")
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while process.router_process() in (None, victim):
            if time.monotonic() > deadline:
                raise RuntimeError("the router process was not started again")
            time.sleep(0.05)
        process.wait_ready(120)
        return time.monotonic() - began

    def _tansu_pid(self) -> int:
        assert self.kafka is not None
        # TansuBroker keeps its process private; the fault test is the one caller that
        # needs to signal it directly.
        process = self.kafka._process
        assert process is not None
        return process.pid

    def verify_audit(self) -> bool:
        # The key the broker wrote at first start, checked as an installer would pin it.
        pinned = self.data / "keys" / "audit-signing.pem.pub"
        command = [sys.executable, "-m", "broker.cli.main", "audit", "verify",
                   "--public-key", str(pinned)]
        env = dict(os.environ)
        if self.kafka is not None:
            command += ["--kafka", self.kafka.bootstrap_servers,
                        "--topic-prefix", self.backend.topic_prefix]
        else:
            command += ["--data", str(self.data)]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                timeout=300, env=env)
        if result.returncode != 0:
            print(result.stdout, result.stderr, file=sys.stderr)
        return result.returncode == 0

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
        if self.kafka is not None:
            self.kafka.stop()


def run_kill_loop(config: KillLoopConfig, workdir: Path, progress: bool = False
                  ) -> KillLoopReport:
    """Run the whole scenario in `workdir`; return the reconciliation."""
    rng = random.Random(config.seed)
    keys = demo_keys()
    report = KillLoopReport()
    started = time.monotonic()
    deployment = Deployment(config, workdir)
    url = deployment.front.url
    publisher = SteadyPublisher(url, keys["county-general"], config.rate)
    publisher.start()
    try:
        victims = deployment.victims()
        for kill in range(1, config.kills + 1):
            time.sleep(rng.uniform(config.min_up, config.max_up))
            victim = victims[(kill - 1) % len(victims)] if kill <= len(victims) \
                else rng.choice(victims)
            took = deployment.strike(victim)
            report.faults[victim] = report.faults.get(victim, 0) + 1
            if victim != "kafka-freeze":
                report.restart_seconds.append(took)
                report.kills_survived += 1
            if progress:
                print(f"  fault {kill}/{config.kills} ({victim}): acknowledged so far "
                      f"{len(publisher.acked)}", flush=True)
        if not publisher.drain(config.settle_timeout):
            raise RuntimeError("the publisher could not get every event acknowledged")
        acked = set(publisher.acked)
        report.acknowledged = len(acked)
        report.acknowledged_as_duplicate = publisher.acked_as_duplicate
        report.resent = publisher.resent
        deliveries = {sub: pull_everything(url, keys[owner], sub, acked,
                                           config.settle_timeout)
                      for sub, owner in SUBSCRIBERS.items()}
        reconcile(report, acked, deliveries, audited_decisions(url, keys["auditor"]))
        for process in deployment.processes.values():
            process.stop()
        report.audit_verified = deployment.verify_audit()
    finally:
        deployment.stop()
    report.seconds = time.monotonic() - started
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50.0, help="births offered per second")
    parser.add_argument("--min-up", type=float, default=1.0)
    parser.add_argument("--max-up", type=float, default=4.0)
    parser.add_argument("--no-encryption", dest="encryption", action="store_false")
    parser.add_argument("--backend", choices=["embedded", "kafka"], default="embedded")
    parser.add_argument("--split", action="store_true",
                        help="separate api+delivery and router processes (implied on kafka)")
    parser.add_argument("--single-process", dest="router_process", action="store_false",
                        help="handoff serve --single-process: everything in one process "
                             "(by default the victim is handoff serve or its router process)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    config = KillLoopConfig(kills=args.kills, rate=args.rate, min_up=args.min_up,
                            max_up=args.max_up, encryption=args.encryption,
                            backend=args.backend, split=args.split, seed=args.seed,
                            router_process=args.router_process)
    layout = ("split processes" if config.split or config.backend == "kafka"
              else "handoff serve with its router process" if config.router_process
              else "one process")
    print(f"kill -9 loop: {config.kills} faults, {config.rate:g} births/s, {config.backend} "
          f"log, {layout}, encryption {'on' if config.encryption else 'off'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="handoff-kill-loop-") as tmp:
        report = run_kill_loop(config, Path(tmp), progress=True)
    print("\n".join(report.lines()))
    sys.exit(0 if report.sound else 1)


if __name__ == "__main__":
    main()
