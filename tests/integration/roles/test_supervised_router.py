"""`handoff serve` (role `all`) runs the router in a child process of its own by
default (`--single-process`, `HANDOFF_ROUTER_PROCESS=0`: one process) and supervises
it: a killed router is started again and nothing is lost or left unaudited, SIGTERM
stops both with the head signed, and no router outlives its parent."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from broker.audit import SqliteAuditStore
from broker.audit.paths import audit_db_path
from broker.audit.store import AuditFilter
from broker.roles import RouterAlreadyRunningError, RouterLock
from tests.e2e.harness import DEMO, REPO, BrokerProcess, Client, LogBackend, child_pids
from tests.integration.roles.conftest import (
    Installation,
    audited_decision_ids,
    birth_of,
    mother,
    pull_until,
)
from tests.integration.roles.test_sigterm import NO_TIMER, embedded_coverage, terminate
from tests.waiting import eventually

pytestmark = pytest.mark.slow

ROUTER_PROCESS = {"HANDOFF_ROUTER_PROCESS": "1"}


def router_child(process: BrokerProcess) -> int:
    pid: int = eventually(process.router_process, timeout=30, message="no router process")
    return pid


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def lock_is_free(data_dir: Path) -> bool:
    try:
        RouterLock(data_dir).release()
    except RouterAlreadyRunningError:
        return False
    return True


def ready(process: BrokerProcess) -> int:
    return httpx.get(f"{process.url}/readyz", timeout=5).status_code


def test_a_killed_router_process_is_started_again_and_nothing_is_lost_or_unaudited(
        embedded: Installation, keys):
    process = embedded.start("all", env=ROUTER_PROCESS)
    first = router_child(process)
    hospital = Client(process.url, keys["county-general"])
    before = {hospital.publish_ok("birth", birth_of(mother(n)))["event_id"] for n in range(5)}
    evaluator = Client(process.url, keys["state-evaluation"])
    pull_until(evaluator, "eval-births", before)

    os.kill(first, signal.SIGKILL)
    # Accepted while no router runs: routed once the new one is up.
    after = {hospital.publish_ok("birth", birth_of(mother(n)))["event_id"]
             for n in range(5, 10)}
    eventually(lambda: ready(process) == 503, timeout=10,
               message="/readyz did not notice the router process was gone")
    eventually(lambda: process.router_process() not in (None, first), timeout=30,
               message="the router process was not started again")
    second = process.router_process()
    assert second is not None
    delivered = pull_until(evaluator, "eval-births", before | after)
    eventually(lambda: ready(process) == 200, timeout=60, message="not ready again")
    auditor = Client(process.url, keys["auditor"])
    assert {d["decision_id"] for d in delivered} <= audited_decision_ids(auditor,
                                                                         "eval-births")
    assert process.proc is not None
    assert terminate(process.proc) == 0, process.logs()
    assert not alive(second)
    logs = process.logs()
    assert "the router process ended with signal SIGKILL" in logs
    verify = subprocess.run(
        [sys.executable, "-m", "broker.cli.main", "audit", "verify", "--data",
         str(process.data_dir)], cwd=REPO, capture_output=True, text=True, timeout=120,
        check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_sigterm_stops_the_router_process_too_with_its_last_checkpoint_signed(
        embedded: Installation, keys):
    process = embedded.start("all", env={**ROUTER_PROCESS, **NO_TIMER})
    child = router_child(process)
    hospital = Client(process.url, keys["county-general"])
    wanted = {hospital.publish_ok("birth", birth_of(mother(n)))["event_id"] for n in range(3)}
    pull_until(Client(process.url, keys["state-evaluation"]), "eval-births", wanted)
    assert process.proc is not None
    assert terminate(process.proc) == 0, process.logs()
    assert not alive(child)
    assert "did not stop within" not in process.logs()
    head, signed = embedded_coverage(process.data_dir)
    assert head > 0 and signed == head, process.logs()


def test_no_router_process_outlives_a_parent_killed_with_sigkill(embedded: Installation):
    process = embedded.start("all", env=ROUTER_PROCESS)
    child = router_child(process)
    process.kill()
    eventually(lambda: not alive(child), timeout=40,
               message="the router process outlived its parent")
    assert (process.data_dir / "router.lock").read_text().strip() == str(child)
    # and its lock is free (once the last of its threads has ended, a moment after the
    # process shows as a zombie):
    eventually(lambda: lock_is_free(process.data_dir), timeout=10,
               message="the router lock is still held")
    # A new `handoff serve` on the same data directory routes again.
    again = embedded.start("all", env=ROUTER_PROCESS)
    router_child(again)


def test_a_router_process_refused_on_its_configuration_stops_handoff_serve(
        embedded: Installation):
    embedded.template.data_dir.mkdir(parents=True, exist_ok=True)
    held = RouterLock(embedded.template.data_dir)  # another router routes this log
    try:
        process = embedded.template.sibling("all")
        process.env = ROUTER_PROCESS
        process.launch()
        assert process.proc is not None
        started = time.monotonic()
        code = process.proc.wait(120)
    finally:
        held.release()
    logs = process.logs()
    assert code == 2, logs
    assert "the router process stopped on a configuration problem" in logs
    assert logs.count("router process started") == 1  # not started again and again
    assert time.monotonic() - started < 90


def test_by_default_the_router_runs_in_a_process_of_its_own(embedded: Installation, keys):
    process = embedded.start("all")
    assert process.proc is not None
    assert router_child(process) in child_pids(process.proc.pid)
    hospital = Client(process.url, keys["county-general"])
    wanted = {hospital.publish_ok("birth", birth_of(mother(1)))["event_id"]}
    pull_until(Client(process.url, keys["state-evaluation"]), "eval-births", wanted)


def test_single_process_keeps_the_router_in_the_serving_process(embedded: Installation,
                                                                 keys):
    process = embedded.start("all", env={"HANDOFF_ROUTER_PROCESS": "0"})
    assert process.proc is not None
    assert child_pids(process.proc.pid) == []
    hospital = Client(process.url, keys["county-general"])
    wanted = {hospital.publish_ok("birth", birth_of(mother(2)))["event_id"]}
    pull_until(Client(process.url, keys["state-evaluation"]), "eval-births", wanted)
    assert child_pids(process.proc.pid) == []


def test_a_policy_reload_reaches_the_router_process(tmp_path, keys):
    policy = tmp_path / "policy"
    shutil.copytree(DEMO / "policy", policy)
    installation = Installation(tmp_path, LogBackend.embedded(), policy)
    try:
        process = installation.start("all", env=ROUTER_PROCESS)
        agencies = policy / "agencies.yaml"
        agencies.write_text(agencies.read_text().replace("regimes: [hipaa]", "regimes: hipaa",
                                                         1))
        assert process.proc is not None
        process.proc.send_signal(signal.SIGHUP)

        def refused_by() -> set[str]:
            store = SqliteAuditStore(audit_db_path(process.data_dir), create=False)
            try:
                return {r.actor for r in store.iter_records(
                    AuditFilter(kind="policy_reload_refused"))}
            finally:
                store.close()

        eventually(lambda: refused_by() == {"sighup", "router_process"}, timeout=30,
                   message="the reload did not reach both processes")
    finally:
        installation.close()


def test_the_serving_process_metrics_count_what_the_router_process_decided(
        embedded: Installation, keys):
    process = embedded.start("all", env=ROUTER_PROCESS)
    router_child(process)
    hospital = Client(process.url, keys["county-general"])
    wanted = {hospital.publish_ok("birth", birth_of(mother(n)))["event_id"] for n in range(3)}
    pull_until(Client(process.url, keys["state-evaluation"]), "eval-births", wanted)

    def decisions() -> float:
        text = httpx.get(f"{process.url}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("handoff_decisions_total{")
                   and 'subscription="eval-births"' in line)

    assert eventually(lambda: decisions() >= 3, timeout=10,
                      message="the parent's /metrics lacks the router process's decisions")
    text = httpx.get(f"{process.url}/metrics", timeout=10).text
    assert text.count("# TYPE handoff_decisions_total counter") == 1
    assert "\nhandoff_router_lag_records " in text
    types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))  # each family once
