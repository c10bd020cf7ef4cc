"""`handoff migrate` and `handoff audit verify --kafka` draw progress bars on a terminal
(forced with rich's `Console(force_terminal=True)`), and nothing extra off one."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from broker.audit import CheckpointSigner, SqliteAuditStore
from broker.audit.paths import audit_db_path, signing_key_path
from broker.cli import progress
from broker.cli.main import app
from broker.log.port import NewRecord, TopicSpec
from broker.log.sqlite import SqliteEventLog
from tests.integration.audit_kafka.conftest import decision

runner = CliRunner()
BAR = "━"


@pytest.fixture
def embedded(tmp_path):
    """A stopped embedded broker's data directory: events and a signed audit chain."""
    data = tmp_path / "data"
    log = SqliteEventLog(data / "log.db")
    log.ensure_topic(TopicSpec("events.birth", partitions=2))
    log.append("events.birth", [NewRecord(value=b"x", key=f"k{n}".encode()) for n in range(60)])
    log.close()
    signer = CheckpointSigner.load_or_create(signing_key_path(data))
    with SqliteAuditStore(audit_db_path(data)) as store:
        store.append([decision(n) for n in range(40)])
        signer.checkpoint(store)
    return data


def migrate(space, data):
    return runner.invoke(app, ["migrate", "--data", str(data), "--kafka",
                               space.broker.bootstrap_servers, "--topic-prefix", space.prefix])


@pytest.mark.slow
def test_migrate_draws_a_bar_for_each_long_step_on_a_terminal(space, embedded, monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(progress, "console",
                        lambda: Console(file=screen, force_terminal=True, width=120))
    result = migrate(space, embedded)
    assert result.exit_code == 0, result.output
    drawn = screen.getvalue()
    for step, count in (("copying topics", "60/60"),
                        ("verifying the embedded audit chain", "40/40"),
                        ("copying the audit chain", "40/40"),
                        ("verifying the audit log in Kafka", "40/40")):
        assert any(step in line and count in line for line in drawn.splitlines()), step
    assert BAR not in result.stdout


@pytest.mark.slow
def test_migrate_off_a_terminal_prints_only_its_lines(space, embedded):
    result = migrate(space, embedded)
    assert result.exit_code == 0, result.output
    assert BAR not in result.output
    assert result.stdout.splitlines()[0] == "events.birth: 60 records copied"
    assert "audit chain embedded-" in result.stdout


def test_verify_against_kafka_draws_a_bar_on_a_terminal(space, signer, tmp_path, monkeypatch):
    store = space.store()
    store.append([decision(n) for n in range(12)])
    screen = io.StringIO()
    monkeypatch.setattr(progress, "console",
                        lambda: Console(file=screen, force_terminal=True, width=100))
    result = runner.invoke(app, ["audit", "verify", "--kafka", space.broker.bootstrap_servers,
                                 "--topic-prefix", space.prefix, "--chain-only"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: 12 records in 1 chain")
    assert "verifying" in screen.getvalue() and "12/12" in screen.getvalue()
