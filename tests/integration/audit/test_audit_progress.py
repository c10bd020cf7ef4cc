"""Long audit commands draw progress bars on a terminal, and nothing else anywhere else.

Bars go to standard error, and only when it is a terminal: forced here with rich's
`Console(force_terminal=True)`, and for real with a pseudo-terminal. Through pipes, as
scripts and CI run the commands, their output is exactly what it was without bars.
"""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from broker.audit import CheckpointSigner
from broker.audit.paths import signing_key_path, signing_public_key_path
from broker.cli import progress
from broker.cli.main import app

runner = CliRunner()
BAR = "━"
"""What rich draws bars with."""


@pytest.fixture
def broker_data(data_dir, store, decision):
    signer = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    store.append([decision(f"MPI-{n % 3}", n) for n in range(30)])
    signer.checkpoint(store)
    store.close()
    return data_dir


@pytest.fixture
def terminal(monkeypatch) -> io.StringIO:
    """Standard error as a terminal 100 columns wide; returns what is drawn on it."""
    screen = io.StringIO()
    monkeypatch.setattr(progress, "console",
                        lambda: Console(file=screen, force_terminal=True, width=100))
    return screen


def handoff(*args):
    return runner.invoke(app, ["audit", *map(str, args)])


def test_verify_draws_a_bar_on_a_terminal_and_prints_only_its_report(broker_data, terminal):
    result = handoff("verify", "--data", broker_data,
                     "--public-key", signing_public_key_path(broker_data))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: 30 records, 1 checkpoints")
    assert result.stdout.count("\n") == 1
    drawn = terminal.getvalue()
    assert "verifying" in drawn and BAR in drawn
    assert "30/30" in drawn


def test_export_draws_a_bar_on_a_terminal(broker_data, terminal, tmp_path):
    out = tmp_path / "audit.jsonl"
    result = handoff("export", "--data", broker_data, "--out", out, "--outcome", "permit")
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 30
    drawn = terminal.getvalue()
    assert "exporting" in drawn and "30/30" in drawn


def test_off_a_terminal_nothing_is_drawn(broker_data, monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(progress, "console", lambda: Console(file=screen))
    assert handoff("verify", "--data", broker_data, "--chain-only").exit_code == 0
    assert screen.getvalue() == ""


def _command(*args: object) -> list[str]:
    return [sys.executable, "-m", "broker.cli.main", "audit", *map(str, args)]


def _environment() -> dict[str, str]:
    return {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100",
            "PYTHONPATH": os.environ.get("PYTHONPATH", str(Path(__file__).parents[3]))}


@pytest.mark.slow   # starts the command as a process
def test_through_pipes_output_is_exactly_the_report(broker_data, tmp_path):
    key = signing_public_key_path(broker_data)
    verified = subprocess.run(_command("verify", "--data", broker_data, "--public-key", key),
                              capture_output=True, text=True, env=_environment(), timeout=60)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr == ""
    assert verified.stdout.count("\n") == 1 and verified.stdout.startswith("ok: 30 records")
    exported = subprocess.run(_command("export", "--data", broker_data),
                              capture_output=True, text=True, env=_environment(), timeout=60)
    assert exported.stderr == "exported 30 records\n"
    assert [json.loads(line)["seq"] for line in exported.stdout.splitlines()] == list(
        range(1, 31))


def _on_a_terminal(args: list[str], *, stdout_too: bool) -> tuple[str, str]:
    """Run with standard error (and standard output, if `stdout_too`) on a pseudo-
    terminal; return (what the terminal showed, what went to the stdout pipe)."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=follower,
                             stdout=follower if stdout_too else subprocess.PIPE,
                             env=_environment())
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:   # the terminal closes when the child exits
            break
        if not chunk:
            break
        shown += chunk
    piped = b"" if child.stdout is None else child.stdout.read()
    child.wait(timeout=60)
    os.close(leader)
    return shown.decode("utf-8", "replace"), piped.decode()


@pytest.mark.slow   # starts the command as a process
def test_on_a_real_terminal_verify_draws_its_bar_on_standard_error(broker_data):
    shown, piped = _on_a_terminal(
        _command("verify", "--data", broker_data, "--public-key",
                 signing_public_key_path(broker_data)), stdout_too=False)
    assert "verifying" in shown and BAR in shown
    assert piped.startswith("ok: 30 records") and piped.count("\n") == 1


@pytest.mark.slow   # starts the command as a process
def test_an_export_shown_on_the_terminal_itself_draws_no_bar_over_it(broker_data):
    shown, _ = _on_a_terminal(_command("export", "--data", broker_data), stdout_too=True)
    assert shown.count('"kind":"decision"') == 30
    assert BAR not in shown and "exporting" not in shown
