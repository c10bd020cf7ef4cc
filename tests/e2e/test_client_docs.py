"""The quick start of docs/client.md runs as written against a demo broker (only the
port is changed), from the repository root."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.e2e.harness import REPO, BrokerProcess

pytestmark = pytest.mark.slow


def test_the_client_quickstart_runs(tmp_path):
    text = (REPO / "docs" / "client.md").read_text()
    found = re.search(r"<!-- snippet: client-quickstart -->\n```python\n(.*?)```", text,
                      re.DOTALL)
    assert found
    broker = BrokerProcess(data_dir=tmp_path / "data").start()
    try:
        script = found.group(1).replace("http://127.0.0.1:8080", broker.url)
        ran = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                             text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    finally:
        broker.stop()
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "published" in ran.stdout
    assert "refused: [('county_fips', " in ran.stdout
    assert ran.stdout.count("birth ") >= 2
