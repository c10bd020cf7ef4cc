"""`handoff demo` as someone trying Handoff runs it: the story it prints shows consent at
work."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e.harness import REPO, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli.main", "demo", "--exit", "--pace", "0",
         "--port", str(free_port()),
         "--data", str(tmp_path_factory.mktemp("demo") / "data")],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
        env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_demo_shows_the_part2_consent_opening_and_closing(demo_output: str) -> None:
    out = demo_output
    ana = out[out.index("Ana Reyes, a young mother"):]
    before, attempt, grant, during = (ana.split("\n\n")[i] for i in (0, 1, 2, 3))
    after = next(p for p in ana.split("\n\n") if "completed treatment" in p)
    assert "hv-sud-enrollments (hv-nfp, care_coordination): DENIED" in before
    assert "consent required by rule cfr42.written-consent" in before
    assert "refused (403), as it must be" in attempt and "'recovery-clinic'" in attempt
    assert "recovery-clinic published consent" in grant
    assert "delivered" in during and "participant.last_name=Reyes" in during
    assert "obligation cfr42.2-32-notice: This record which has been disclosed" in during
    assert "completed treatment" in after and "DENIED" in after
    assert "participant.last_name" not in after


def test_the_demo_shows_one_birth_match_and_a_birth_child_welfare_never_sees(
        demo_output: str) -> None:
    paragraphs = demo_output.split("\n\n")
    listed = next(p for p in paragraphs if "cw-hotline published watch_list_entry" in p)
    assert "sent to no one" in listed and "→" not in listed
    matched = next(p for p in paragraphs if "birth of Keisha Brown's son" in p)
    assert "birth match: the mother is on child welfare's list" in matched
    assert "cw-birth-matches (cw-hotline, birth_match): delivered" in matched
    assert "entry_id=CPS-CASE-2025-3318" in matched and "match_method=IDENTITY" in matched
    # The minimum necessary: nothing of the birth record beyond when and where.
    assert "Keisha" not in matched.split("delivered", 1)[1]
    assert "3180" not in matched
    unmatched = next(p for p in paragraphs if "birth of Maria Delgado's daughter" in p)
    assert "child welfare receives nothing" in unmatched and "→" not in unmatched
    assert "Jolene is one person across 2 agencies' records" in demo_output
