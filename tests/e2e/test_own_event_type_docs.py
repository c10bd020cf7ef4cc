"""The "Add your own event type" walk-through of docs/policy.md runs as written (only the
port is changed to a free one), and ends with the discharge delivered."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.e2e.harness import REPO, free_port

pytestmark = pytest.mark.slow
DOC = REPO / "docs" / "policy.md"


def snippet(name: str) -> str:
    found = re.search(rf"<!-- snippet: {name} -->\n```sh\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert found, f"docs/policy.md has no snippet {name}"
    return found.group(1)


def test_the_worked_example_runs_as_written():
    script = snippet("own-event-type").replace("8080", str(free_port()))
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO,
                          capture_output=True, text=True, timeout=240,
                          env={**os.environ, "HANDOFF_LOG__BACKEND": "embedded"})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    reload, consent, discharge, pulled = (json.loads(line) for line in lines[-4:])
    assert reload["changed"] is True
    assert consent["topic"] == "events.consent"
    assert discharge["topic"] == "events.sud_discharge"
    (delivered,) = pulled["events"]
    assert delivered["event_type"] == "sud_discharge"
    assert delivered["data"]["discharge_reason"] == "COMPLETED"
    assert "level_of_care" in delivered["withheld"]
    assert "ok:" in done.stdout
