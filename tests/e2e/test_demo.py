"""`handoff demo` as someone trying Handoff runs it: the story it prints shows consent at
work, a referral's loop closed, and a dropped handoff flagged."""

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


def paragraph(out: str, starting: str) -> str:
    """The printed step whose narration starts with `starting`."""
    return next(p for p in out.split("\n\n") if p.startswith(starting))


def test_the_demo_shows_the_part2_consent_opening_and_closing(demo_output: str) -> None:
    out = demo_output
    ana = out[out.index("Ana Reyes, a young mother"):]
    before, attempt, grant, during = (ana.split("\n\n")[i] for i in (0, 1, 2, 3))
    after = paragraph(out, "Harbor Recovery records that Ana completed treatment")
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
    # The hospital, the hotline (its referral) and the home visitor (her enrollment).
    assert "Jolene is one person across 3 agencies' records" in demo_output


def test_the_demo_closes_the_hotlines_referral_loop(demo_output: str) -> None:
    out = demo_output
    accepted = paragraph(out, "The Nurse-Family Partnership accepts the hotline's referral")
    assert "cw-referral-status (cw-hotline, care_coordination): delivered" in accepted
    assert "status=ACCEPTED" in accepted
    attempt = paragraph(out, "A nurse calls Jolene; nobody answers")
    assert "cw-referral-status (cw-hotline, care_coordination): DENIED" in attempt
    assert "do not send IN_PROGRESS with CONTACT_ATTEMPTED back to the referrer" in attempt
    for start, status in (("The nurse reaches Jolene", "business_status=CONTACTED"),
                          ("NFP closes the referral", "business_status=ENROLLED")):
        step = paragraph(out, start)
        assert "cw-referral-status (cw-hotline, care_coordination): delivered" in step
        assert status in step
        # What the hotline received: statuses and dates, no substance-use fact.
        received = step[step.index("received"):]
        assert "receiving_mat" not in received and "substance" not in received
        assert "diagnosis" not in received
    enrolled = paragraph(out, "Jolene enrolls in the Nurse-Family Partnership")
    assert "cw-referral-status" not in enrolled


def test_the_demo_flags_the_dropped_handoff_and_clears_it(demo_output: str) -> None:
    out = demo_output
    later = out[out.index("Later."):]
    raised = paragraph(later, "Nobody at NFP picks up Keisha's referral")
    assert "the demo's clock now reads" in raised and "10 days ahead of real time" in raised
    assert raised.count("handoff_overdue RAISED referral HL-2026-118204") == 2
    assert "not received within 1 business day" in raised
    assert "no first contact within 3 business days" in raised
    assert "hv-handoff-alerts (hv-nfp): the same 2 alert(s)" in raised
    declined = paragraph(later, "NFP finally answers Keisha's referral")
    assert "status=REJECTED" in declined and "reason=NO_CAPACITY" in declined
    cleared = paragraph(later, "The late answer clears both alerts")
    assert cleared.count("handoff_overdue CLEARED referral HL-2026-118204") == 2
