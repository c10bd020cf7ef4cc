"""`handoff connect new` writes a package that installs, registers its connector type
through the entry point, and passes its own generated test unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def run(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.slow
def test_a_scaffolded_connector_passes_its_own_test(tmp_path):
    made = run(sys.executable, "-m", "broker.cli.main", "connect", "new", "acme-cms",
               "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    package = tmp_path / "acme-cms"
    assert (package / "src" / "handoff_acme_cms" / "connector.py").exists()

    # Installed into a folder of its own, not into the shared environment.
    site = tmp_path / "site"
    installed = run(sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(site), str(package))
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}

    tested = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 cwd=package, env=env)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout

    listed = run(sys.executable, "-m", "broker.cli.main", "connect", "types", env=env)
    assert listed.returncode == 0, listed.stderr
    assert any(line.split("\t")[:2] == ["acme_cms", "source"]
               for line in listed.stdout.splitlines())


@pytest.mark.slow
def test_a_name_that_cannot_become_a_package_is_refused(tmp_path):
    made = run(sys.executable, "-m", "broker.cli.main", "connect", "new", "Acme CMS!",
               "--dir", str(tmp_path))
    assert made.returncode == 2
    assert "is not a usable connector name" in made.stderr
    assert list(tmp_path.iterdir()) == []
