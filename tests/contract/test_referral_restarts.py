"""The referral ledger over SQLite across `kill -9`: each deadline's alert is published,
none is lost, none is published again except the one tick the kill interrupted, and the
store ends equal to a rebuild from the log."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker.referral_store import SqliteLedgerStore
from referrals.ledger import ReferralLedger
from referrals.store import InMemoryLedgerStore
from tests.contract.referral_ledger_writer import BATCH, FAR_FUTURE, history
from tests.referral_cases import SIMPLE_POLICY

WRITER = Path(__file__).with_name("referral_ledger_writer.py")
REPO = Path(__file__).resolve().parents[2]


def reference() -> tuple[list[str], list]:
    """What one uninterrupted run publishes, and the entries it ends with."""
    store = InMemoryLedgerStore()
    ledger = ReferralLedger(store, SIMPLE_POLICY)
    log = history()
    published: list[str] = []
    for offset in range(0, len(log), BATCH):
        batch = log[offset:offset + BATCH]
        ledger.apply(batch)
        for now in (batch[-1].occurred_at,):
            while alerts := ledger.due_alerts(now, limit=50):
                published += [a.event_id for a in alerts]
                ledger.record_alerts(alerts)
    while alerts := ledger.due_alerts(FAR_FUTURE, limit=50):
        published += [a.event_id for a in alerts]
        ledger.record_alerts(alerts)
    return published, list(store.scan())


def start(store: Path, published: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}
    return subprocess.Popen([sys.executable, str(WRITER), str(store), str(published)],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_loses_no_alert_and_repeats_at_most_one_tick(tmp_path, seed):
    expected, entries = reference()
    assert len(expected) == len(set(expected)) > 300  # the scenario does raise alerts
    store, published = tmp_path / "referrals.db", tmp_path / "published.txt"
    rng = random.Random(seed)
    kills = 0
    while True:
        writer = start(store, published)
        assert writer.stdout is not None
        kill_after = rng.randint(3, 25)
        for seen, line in enumerate(writer.stdout, start=1):
            if line.startswith("done"):
                break
            if seen == kill_after:
                time.sleep(rng.random() * 0.02)  # land anywhere in the next cycle
                writer.send_signal(signal.SIGKILL)
                kills += 1
                break
        code = writer.wait(timeout=60)
        if code == 0:
            break
        assert code == -signal.SIGKILL
    assert kills >= 1
    lines = published.read_text(encoding="utf-8").split()
    assert set(lines) == set(expected), "an alert was lost or invented"
    repeats = len(lines) - len(set(lines))
    assert repeats <= 50 * kills, "more than the interrupted tick was published again"
    rebuilt = SqliteLedgerStore(store)
    try:
        assert list(rebuilt.scan()) == entries, "the store differs from a rebuild"
        assert rebuilt.timer_count() == 0
    finally:
        rebuilt.close()
