"""Every shell command in README.md and docs/*.md runs as written: its variables are set
in its block, each `handoff ...` command parses with the command line's own parser, a
server names its policy and keys, the repository files it names exist; and the blocks
that talk to a demo broker run against one this test starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer

from broker.cli.main import app
from tests.doc_commands import Block, defined_variables, shell_blocks, used_variables
from tests.e2e.harness import DEMO, REPO, free_port
from tests.waiting import eventually

BLOCKS = shell_blocks()

# Blocks whose `handoff serve` runs inside the container image, whose environment names
# the policy and the data directory (HANDOFF_POLICY_DIR, HANDOFF_DATA_DIR).
IN_THE_IMAGE = {("docs/deploy.md", "handoff serve --role api      --port 8080")}

# Blocks run against the demo broker below, by file and a line they hold. Every other
# block is checked statically only, because it:
#  - installs packages or runs the test suite, ruff or mypy (README Quickstart and
#    Development, docs/security.md, docs/linkage.md, docs/connectors.md `connect new`);
#  - starts a long-running server or the demo (`handoff serve`, `handoff demo`);
#  - needs Kafka on a real cluster, Docker or Kubernetes (README Kafka, docs/deploy.md,
#    docs/migration.md, docs/operations.md);
#  - needs the reader's own files: a connectors file, a FHIR bundle, a KEK, key ids,
#    paths under /path/to/handoff or /etc/handoff (docs/connectors.md, docs/webhooks.md
#    FHIR, README keys and encryption, docs/security.md);
#  - is run as written by its own test: docs/policy.md's own event type
#    (tests/e2e/test_own_event_type_docs.py), docs/referrals.md's walk-through
#    (tests/integration/referrals/test_referrals_docs.py).
RUN_AGAINST_THE_DEMO = (
    ("README.md", "curl -s -X POST http://127.0.0.1:8080/v1/events/birth"),
    ("README.md", "subscriptions/eval-births/events"),
    ("README.md", "handoff policy check examples/demo/policy"),
    ("README.md", "v1/linkage/reviews"),
    ("README.md", "v1/reports/referrals?format=csv"),
    ("README.md", "v1/audit/disclosures/MPI-0048213"),
    ("docs/referrals.md", "--format table"),
    ("docs/webhooks.md", "hv-births/dead-letters"),
)

# Lines of those blocks left out of the run, and why.
NOT_RUN = (
    # Trains a model on the person index: needs many people, the test's broker has one
    # birth (it then says so in one line and exits 1).
    "handoff linkage retrain",
)


def _ids(blocks: tuple[Block, ...]) -> list[str]:
    return [b.where for b in blocks]


def _holds(block: Block, file: str, line: str) -> bool:
    return block.file == file and line in block.text


def _parse(words: tuple[str, ...]) -> None:
    """Parse a `handoff` command with the CLI's own parser, running nothing."""
    command: click.Command = typer.main.get_command(app)
    context = click.Context(command, info_name="handoff")
    args = [w for w in words[1:] if w != "…"]
    while isinstance(command, click.Group):
        name = args.pop(0)
        sub = command.get_command(context, name)
        if sub is None:
            raise click.UsageError(f"no such command {name!r}")
        command = sub
        context = click.Context(command, info_name=name, parent=context)
    try:
        command.make_context(context.info_name, args, parent=context.parent)
    except click.BadParameter as exc:
        if "does not exist" not in str(exc):   # a path the reader makes first
            raise


def test_blocks_are_found() -> None:
    assert len(BLOCKS) > 40
    assert any(b.file == "README.md" for b in BLOCKS)
    for file, line in RUN_AGAINST_THE_DEMO:
        assert any(_holds(b, file, line) for b in BLOCKS), (file, line)


@pytest.mark.parametrize("block", BLOCKS, ids=_ids(BLOCKS))
def test_every_variable_is_set_where_it_is_used(block: Block) -> None:
    missing = used_variables(block.text) - defined_variables(block.text)
    assert not missing, f"{block.where} uses {sorted(missing)} without setting them"


HANDOFF_BLOCKS = tuple(b for b in BLOCKS if any(c[0] == "handoff" for c in b.simple_commands()))


@pytest.mark.parametrize("block", HANDOFF_BLOCKS, ids=_ids(HANDOFF_BLOCKS))
def test_every_handoff_command_parses(block: Block) -> None:
    for words in block.simple_commands():
        if words[0] != "handoff":
            continue
        try:
            _parse(words)
        except click.ClickException as exc:
            pytest.fail(f"{block.where}: `{' '.join(words)}`: {exc.format_message()}")


@pytest.mark.parametrize("block", HANDOFF_BLOCKS, ids=_ids(HANDOFF_BLOCKS))
def test_every_server_names_its_policy_and_keys(block: Block) -> None:
    """Without them `handoff serve` reads ./policy (from the repository root, the engine's
    own package) and <data>/keys.yaml, and stops."""
    if any(_holds(block, *skip) for skip in IN_THE_IMAGE):
        return
    for words in block.simple_commands():
        if words[:2] != ("handoff", "serve") or "…" in words or "--config" in words:
            continue
        said = " ".join(words) + " " + block.text
        assert "--policy" in words or "HANDOFF_POLICY_DIR=" in said, (block.where, words)
        assert "--keys" in words or "HANDOFF_KEYS_FILE=" in said, (block.where, words)


@pytest.mark.parametrize("block", BLOCKS, ids=_ids(BLOCKS))
def test_every_repository_file_named_exists(block: Block) -> None:
    for words in block.simple_commands():
        if words[0] in ("kubectl", "docker"):   # their arguments name cluster resources
            continue
        for word in words:
            path = word.lstrip("@").split("=", 1)[-1]
            if re.match(r"(examples|schemas|bench|deploy|tests)/", path) and "$" not in path:
                assert (REPO / path).exists(), f"{block.where}: {path} does not exist"


# -- run against a demo broker ---------------------------------------------------------

@pytest.fixture(scope="module")
def demo_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """`handoff serve` with the demo's policy and keys, in a folder that sees the
    repository's examples/ and schemas/ (so relative paths resolve) and keeps .handoff."""
    folder = tmp_path_factory.mktemp("reader")
    for name in ("examples", "schemas"):
        (folder / name).symlink_to(REPO / name)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "broker.cli.main", "serve", "--policy", str(DEMO / "policy"),
         "--keys", str(DEMO / "keys.yaml"), "--data", ".handoff", "--port", str(port)],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: _ready(port), timeout=60, message="the demo broker never got ready")
        yield folder, port
    finally:
        server.terminate()
        server.wait(30)


def _ready(port: int) -> bool:
    result = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/readyz"],
                            capture_output=True, check=False)
    return result.returncode == 0


def _as_run_here(block: Block, port: int) -> str:
    """The block as written, on this test's port, with curl failing on an HTTP error."""
    text = "\n".join(line for line in block.text.splitlines()
                     if not any(line.startswith(skip) for skip in NOT_RUN))
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    return re.sub(r"\bcurl -s\b", "curl -sf", text)


@pytest.mark.slow
def test_the_blocks_that_talk_to_the_demo_broker_run(demo_broker: tuple[Path, int]) -> None:
    folder, port = demo_broker
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for file, line in RUN_AGAINST_THE_DEMO:
        block = next(b for b in BLOCKS if _holds(b, file, line))
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c",
                                 _as_run_here(block, port)],
                                cwd=folder, capture_output=True, text=True, timeout=120,
                                env=env, check=False)
        assert result.returncode == 0, f"{block.where}:\n{result.stdout}\n{result.stderr}"
