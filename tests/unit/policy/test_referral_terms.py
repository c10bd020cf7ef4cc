"""Referral terms and calendars in a bundle: every mistake with file, line and field, the
warnings `handoff policy check` prints, and what reaches the bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from policy_cases import CATALOG, DEMO_DIR
from typer.testing import CliRunner

from broker.cli.main import app
from policy import BundleError, load_bundle

BROKEN_REFERRALS = """\
referrals:
  - id: one
    agreement: dcf-hv-screened-out
    services: [HOME_VISITING]
    calendar: wi-state
    service_levels:
      received: 1 business day
      first_contact: 3 busines days
  - id: two
    agreement: cgh-hv-births
  - id: three
    agreement: no-such-agreement
  - id: four
    agreement: dcf-hv-screened-out
    services: [HOME_VISITING]
    service_levels:
      outcome: 10 business days
    feedback:
      agreement: nfp-eval-enrollments
      statuses: [COMPLETED]
  - id: five
    agreement: dcf-hv-screened-out
    services: [OTHER, HOME_VISITING]
  - id: four
    agreement: dcf-hv-screened-out
    services: [FAMILY_PRESERVATION]
  - id: six
    agreement: dcf-hv-screened-out
    colour: blue
"""
BROKEN_CALENDARS = """\
calendars:
  - id: wi-state
    timezone: America/Madison
  - id: other
    timezone: UTC
    holidays: [2026-12-25, 2026-12-25]
  - id: third
    timezone: UTC
    weekend: [saturday, sunday, friday, monday, tuesday, wednesday, thursday]
"""

EXPECTED = [
    ("referrals.yaml", 8, "service_levels.first_contact", "not a duration"),
    ("referrals.yaml", 10, "agreement", "agreement 'cgh-hv-births' does not carry referral"),
    ("referrals.yaml", 12, "agreement", "unknown agreement 'no-such-agreement'"),
    ("referrals.yaml", 17, "service_levels.outcome", "business days need a calendar"),
    ("referrals.yaml", 19, "feedback.agreement", "feedback agreement 'nfp-eval-enrollments' "
                                                 "must run from the receiver 'hv-nfp' to the "
                                                 "referrer 'cw-hotline'"),
    ("referrals.yaml", 19, "feedback.agreement", "does not carry referral_status events"),
    ("referrals.yaml", 23, "services", "terms 'four' (referrals.yaml:13) already cover "
                                       "HOME_VISITING of agreement 'dcf-hv-screened-out'"),
    ("referrals.yaml", 24, "id", "duplicate referral terms id 'four' (first at "
                                 "referrals.yaml:13)"),
    ("referrals.yaml", 29, "colour", "unknown key 'colour'"),
    ("calendars.yaml", 3, "timezone", "unknown time zone 'America/Madison'"),
    ("calendars.yaml", 6, "holidays", "2026-12-25 is listed twice"),
    ("calendars.yaml", 9, "weekend", "every day is a weekend day"),
]


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(DEMO_DIR, target)
    return target


def problems_of(folder: Path) -> list:
    with pytest.raises(BundleError) as raised:
        load_bundle(folder, CATALOG)
    return raised.value.problems


def test_every_referral_mistake_is_reported_with_file_line_and_field(demo_copy: Path):
    (demo_copy / "referrals.yaml").write_text(BROKEN_REFERRALS, encoding="utf-8")
    (demo_copy / "calendars.yaml").write_text(BROKEN_CALENDARS, encoding="utf-8")
    found = problems_of(demo_copy)
    for file, line, location, message in EXPECTED:
        matches = [p for p in found if (p.file, p.line, p.location) == (file, line, location)]
        assert any(message in p.message for p in matches), (file, line, location,
                                                            [str(p) for p in found])
    assert len(found) == len(EXPECTED), [str(p) for p in found]


def test_symbols_and_references_are_checked_once_an_entry_is_well_formed(demo_copy: Path):
    (demo_copy / "referrals.yaml").write_text("""\
referrals:
  - id: one
    agreement: dcf-hv-screened-out
    services: [HOME_VISTING]
    calendar: wi-stat
    feedback:
      agreement: nfp-hotline-referral-status
      statuses: [ACCEPTED, ENROLLED]
      business_statuses: [ENROLED]
""", encoding="utf-8")
    assert [str(p) for p in problems_of(demo_copy)] == [
        "referrals.yaml:4: services[0]: 'HOME_VISTING' is not a symbol of "
        "referral.referred_to_service (BEHAVIORAL_HEALTH, CONCRETE_SUPPORTS, "
        "EARLY_INTERVENTION, FAMILY_PRESERVATION, HOME_VISITING, OTHER, SUD_TREATMENT)",
        "referrals.yaml:5: calendar: unknown calendar 'wi-stat'",
        "referrals.yaml:8: feedback.statuses[1]: 'ENROLLED' is not a symbol of "
        "referral_status.status (ACCEPTED, CANCELLED, COMPLETED, FAILED, IN_PROGRESS, "
        "ON_HOLD, RECEIVED, REJECTED, REQUESTED)",
        "referrals.yaml:9: feedback.business_statuses[0]: 'ENROLED' is not a symbol of "
        "referral_status.business_status (CONTACTED, CONTACT_ATTEMPTED, ENROLLED, "
        "UNABLE_TO_REACH, WAITLISTED)",
    ]


def test_the_demo_terms_reach_the_bundle():
    bundle = load_bundle(DEMO_DIR, CATALOG)
    terms = bundle.referrals["hotline-to-nfp"]
    assert [(s, lv.label()) for s, lv in terms.levels] == [
        ("received", "1 business day"), ("first_contact", "3 business days"),
        ("outcome", "30 days")]
    assert terms.feedback is not None and terms.feedback.allows("ACCEPTED", None)
    assert not terms.feedback.allows("IN_PROGRESS", "CONTACT_ATTEMPTED")
    assert bundle.calendars["wi-state"].timezone == "America/Chicago"


def test_a_bundle_without_referral_terms_keeps_its_version(demo_copy: Path):
    for name in ("referrals.yaml", "calendars.yaml"):
        (demo_copy / name).unlink()
    bundle = load_bundle(demo_copy, CATALOG)
    assert "referrals" not in bundle.canonical_content()
    assert "calendars" not in bundle.canonical_content()
    assert load_bundle(DEMO_DIR, CATALOG).version != bundle.version


def test_a_changed_service_level_changes_the_version(demo_copy: Path):
    before = load_bundle(demo_copy, CATALOG).version
    path = demo_copy / "referrals.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "first_contact: 3 business days", "first_contact: 2 business days"), encoding="utf-8")
    assert load_bundle(demo_copy, CATALOG).version != before


# -- warnings -----------------------------------------------------------------------------

runner = CliRunner()


def check(folder: Path) -> list[str]:
    result = runner.invoke(app, ["policy", "check", str(folder)])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_policy_check_warns_about_a_referral_agreement_with_no_terms(demo_copy: Path):
    (demo_copy / "referrals.yaml").unlink()
    lines = check(demo_copy)
    assert lines[0] == ("agreements/cw-hotline.yaml:11: event_types: warning: referral "
                        "agreement 'dcf-hv-screened-out' has no return path and no service "
                        "levels: add referral terms for it in referrals.yaml")
    assert lines[1].startswith("ok: ")


def test_policy_check_warns_about_terms_with_no_feedback(demo_copy: Path):
    path = demo_copy / "referrals.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:text.index("    feedback:")], encoding="utf-8")
    assert check(demo_copy)[0] == (
        "referrals.yaml:11: agreement: warning: referral agreement 'dcf-hv-screened-out' has "
        "no return path: add 'feedback' so 'cw-hotline' learns what became of its referrals")


SUD = """\
agreements:
  - id: hotline-harbor
    source: cw-hotline
    recipient: recovery-clinic
    purpose: care_coordination
    event_types: [referral]
    effective: 2026-01-01
    fields: [event_id, occurred_at, subject_id, referral_id: pseudonymise, reason]
  - id: harbor-hotline-status
    source: recovery-clinic
    recipient: cw-hotline
    purpose: care_coordination
    event_types: [referral_status]
    effective: 2026-01-01
    fields: [event_id, occurred_at, referral_id, referrer, status, reason]
"""


def test_policy_check_warns_when_a_sud_program_s_reasons_would_flow_back(demo_copy: Path):
    (demo_copy / "agreements" / "sud.yaml").write_text(SUD, encoding="utf-8")
    agencies = demo_copy / "agencies.yaml"
    agencies.write_text(agencies.read_text(encoding="utf-8").replace(
        "    publishes: [enrollment, referral, consent]",
        "    publishes: [enrollment, referral, consent, referral_status]"), encoding="utf-8")
    path = demo_copy / "referrals.yaml"
    path.write_text(path.read_text(encoding="utf-8") + """\
  - id: hotline-to-harbor
    agreement: hotline-harbor
    feedback:
      agreement: harbor-hotline-status
      statuses: [ACCEPTED, REJECTED]
""", encoding="utf-8")
    warnings = [line for line in check(demo_copy) if ": warning: " in line]
    assert warnings == [
        "referrals.yaml:23: agreement: warning: agreement 'hotline-harbor' does not release "
        "referral_id as it is, so the receiver cannot name the referral when it reports a "
        "status",
        "referrals.yaml:25: feedback.agreement: warning: 'recovery-clinic' is a substance-use "
        "program and feedback agreement 'harbor-hotline-status' releases its reasons to "
        "'cw-hotline'; leave 'reason' out",
    ]


def test_policy_check_warns_when_a_party_would_not_hear_of_dropped_handoffs(demo_copy: Path):
    (demo_copy / "agreements" / "handoff-alerts.yaml").unlink()
    subscriptions = demo_copy / "subscriptions.yaml"
    text = subscriptions.read_text(encoding="utf-8")
    start, end = text.index("  - id: cw-handoff-alerts"), text.index("  - id: cw-birth-match")
    subscriptions.write_text(text[:start] + text[end:], encoding="utf-8")
    warnings = [line for line in check(demo_copy) if ": warning: " in line]
    assert warnings == [
        "referrals.yaml:14: service_levels: warning: no agreement from 'handoff' to the "
        "referrer 'cw-hotline' carries handoff_overdue: it will not hear when these service "
        "levels are missed",
        "referrals.yaml:14: service_levels: warning: no agreement from 'handoff' to the "
        "receiver 'hv-nfp' carries handoff_overdue: it will not hear when these service "
        "levels are missed",
    ]


def test_only_the_broker_publishes_overdue_alerts(demo_copy: Path):
    agencies = demo_copy / "agencies.yaml"
    agencies.write_text(agencies.read_text(encoding="utf-8").replace(
        "    publishes: [enrollment, screening, consent, referral_status]",
        "    publishes: [enrollment, screening, consent, referral_status, handoff_overdue]"
    ).replace("    kind: broker", "    kind: evaluator"), encoding="utf-8")
    found = [str(p) for p in problems_of(demo_copy)]
    line = agencies.read_text(encoding="utf-8").splitlines().index(
        "    publishes: [enrollment, screening, consent, referral_status, handoff_overdue]") + 1
    assert f"agencies.yaml:{line}: publishes[4]: only the broker ('handoff') publishes " \
           "handoff_overdue events" in found
    assert any("'handoff' is the broker's own agency id: its kind must be 'broker'" in p
               for p in found)


def test_terms_sharing_a_feedback_agreement_must_send_the_same_statuses(demo_copy: Path):
    path = demo_copy / "referrals.yaml"
    path.write_text(path.read_text(encoding="utf-8") + """\
  - id: hotline-to-nfp-preservation
    agreement: dcf-hv-screened-out
    services: [FAMILY_PRESERVATION]
    feedback:
      agreement: nfp-hotline-referral-status
      statuses: [ACCEPTED, REJECTED, IN_PROGRESS]
      business_statuses: [CONTACT_ATTEMPTED]
""", encoding="utf-8")
    assert [str(p) for p in problems_of(demo_copy)] == [
        "referrals.yaml:26: feedback.agreement: terms 'hotline-to-nfp' (referrals.yaml:5) "
        "also send statuses back under agreement 'nfp-hotline-referral-status', with other "
        "statuses or business statuses; give these terms their own feedback agreement or "
        "the same lists"]
