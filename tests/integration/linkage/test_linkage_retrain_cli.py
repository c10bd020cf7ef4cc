"""`handoff linkage retrain`: reports how links would change and changes nothing; with
`--apply` it saves the model for the router's next start and queues the newly linking
pairs for review, audited; it refuses to write while the router runs."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from broker.audit import SqliteAuditStore
from broker.audit.paths import audit_db_path
from broker.audit.store import AuditFilter
from broker.roles import RouterLock
from linkage.default_model import default_model
from linkage.resolver import PersonResolver
from linkage.sqlite_index import SqlitePersonIndex
from linkage.synthetic import SyntheticPopulation, linked_dataset
from linkage.thresholds import Thresholds
from tests.e2e.harness import DEMO, REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("retrain") / "data"
    index = SqlitePersonIndex(folder / "linkage" / "persons.db", synchronous="OFF")
    resolver = PersonResolver(index, default_model(), Thresholds.from_probabilities(0.99, 0.5))
    for record in linked_dataset(SyntheticPopulation(seed=11), 1200):
        resolver.resolve(record.record)
    index.close()
    (folder / "keys").mkdir()
    (folder / "keys" / "subject-pseudonym.key").write_bytes(secrets.token_bytes(32))
    return folder


def retrain(data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli.main", "linkage", "retrain", "--data", str(data),
         "--policy", str(DEMO / "policy"), "--u-pairs", "2e5", *extra],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False,
        env={**os.environ, "COLUMNS": "200"})


def state(data: Path) -> tuple[int, tuple[int, int]]:
    index = SqlitePersonIndex(data / "linkage" / "persons.db")
    try:
        return index.last_seq(), index.counts()
    finally:
        index.close()


def test_retrain_reports_and_changes_nothing_until_applied(data: Path) -> None:
    before = state(data)
    result = retrain(data, "--list")
    assert result.returncode == 0, result.stderr
    assert re.search(r"\d+ blocked pairs re-scored", result.stdout)
    assert re.search(r"pairs of different persons the new model would link: \d+",
                     result.stdout)
    assert "nothing changed" in result.stdout
    assert state(data) == before
    assert not (data / "linkage" / "model.json").exists()

    lock = RouterLock(data)                  # as if the broker's router were running
    try:
        refused = retrain(data, "--apply")
    finally:
        lock.release()
    assert refused.returncode == 2 and "stop it first" in refused.stderr
    assert state(data) == before

    applied = retrain(data, "--apply")
    assert applied.returncode == 0, applied.stderr
    opened = int(re.search(r"applied: (\d+) review item", applied.stdout)[1])  # type: ignore[index]
    assert (data / "linkage" / "model.json").exists()
    store = SqliteAuditStore(audit_db_path(data), create=False)
    try:
        audited = list(store.iter_records(AuditFilter(kind="linkage_review_opened")))
    finally:
        store.close()
    assert len(audited) == opened
    assert all(r.actor == "linkage-retrain" and r.detail["evidence"] for r in audited)
    index = SqlitePersonIndex(data / "linkage" / "persons.db")
    try:
        assert len(index.open_reviews(1000)) >= opened
    finally:
        index.close()
