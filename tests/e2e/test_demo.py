"""`handoff demo` as someone trying Handoff runs it: the story it prints shows consent at
work."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e.harness import REPO, free_port

pytestmark = pytest.mark.slow


def test_the_demo_shows_the_part2_consent_opening_and_closing(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli.main", "demo", "--exit", "--pace", "0",
         "--port", str(free_port()), "--data", str(tmp_path / "data")],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
        env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    ana = out[out.index("Ana Reyes, a young mother"):]
    before, attempt, grant, during, after = (
        ana.split("\n\n")[i] for i in (0, 1, 2, 3, -2))
    assert "hv-sud-enrollments (hv-nfp, care_coordination): DENIED" in before
    assert "consent required by rule cfr42.written-consent" in before
    assert "refused (403), as it must be" in attempt and "'recovery-clinic'" in attempt
    assert "recovery-clinic published consent" in grant
    assert "delivered" in during and "participant.last_name=Reyes" in during
    assert "obligation cfr42.2-32-notice: This record which has been disclosed" in during
    assert "completed treatment" in after and "DENIED" in after
    assert "participant.last_name" not in after
