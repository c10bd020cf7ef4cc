"""What the command line says when a file or a port is not what the user thinks: one
line naming it, and an exit code the help lists."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broker.cli.main import app
from tests.e2e.harness import REPO

DEMO = REPO / "examples" / "demo"


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_keys_list_without_a_keys_file_names_it_and_fails(tmp_path: Path) -> None:
    missing = tmp_path / "keys.yaml"
    for args in (["keys", "list", "--keys", str(missing)],
                 ["keys", "list", "--data", str(tmp_path)],
                 ["keys", "revoke", "cg-1", "--keys", str(missing)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, args
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(missing) in lines[0], lines
    assert not missing.exists()


def test_keys_list_reads_an_existing_file() -> None:
    result = CliRunner().invoke(app, ["keys", "list", "--keys", str(DEMO / "keys.yaml")])
    assert result.exit_code == 0, result.output
    assert "county-general" in result.stdout


def test_serve_on_a_taken_port_exits_3_in_one_line(tmp_path: Path, taken_port: int) -> None:
    result = CliRunner().invoke(app, [
        "serve", "--policy", str(DEMO / "policy"), "--keys", str(DEMO / "keys.yaml"),
        "--data", str(tmp_path / "data"), "--port", str(taken_port)])
    assert result.exit_code == 3
    assert f"port {taken_port} on 127.0.0.1 is already in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_demo_on_a_taken_port_exits_3_and_leaves_no_directory(
        tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = CliRunner().invoke(app, ["demo", "--exit", "--port", str(taken_port)])
    assert result.exit_code == 3, result.output
    assert f"port {taken_port}" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_the_help_lists_the_exit_code_for_a_taken_port(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "3 when the port is already in use" in " ".join(result.stdout.split())
