"""`handoff policy check` and `handoff policy explain`, driven like a data steward would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from policy_cases import DEMO_DIR, FIXTURES
from typer.testing import CliRunner

from broker.cli.main import app

REPO = DEMO_DIR.parents[2]
EXAMPLES = REPO / "schemas" / "events"
runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, ["policy", *map(str, args)])


def test_check_a_valid_bundle() -> None:
    result = run("check", DEMO_DIR)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: 10 agencies, 11 agreements, 19 rules, "
                                    "11 subscriptions version sha256:")


def test_check_prints_every_problem_one_per_line_and_exits_1() -> None:
    result = run("check", FIXTURES / "broken")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 24
    assert ("agreements/vr-hv.yaml:12: fields[3]: 'mother.ssns' is not a field of birth v1"
            in lines)


def test_check_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    assert run("check", tmp_path / "missing").exit_code == 2


def explain(*extra: str, event: Path = EXAMPLES / "birth.example.json",
            event_type: str = "birth", source: str = "county-general",
            subscription: str = "hv-births") -> Any:
    return run("explain", DEMO_DIR, "--event", event, "--type", event_type,
               "--source", source, "--subscription", subscription, *extra)


@pytest.fixture
def consents_file(tmp_path: Path) -> Path:
    consent = json.loads((EXAMPLES / "consent.example.json").read_text(encoding="utf-8"))
    consent["occurred_at"] = consent["effective_at"] = "2026-11-01T00:00:00Z"
    path = tmp_path / "consents.jsonl"
    path.write_text(json.dumps(consent) + "\n" + json.dumps(
        {**consent, "consent_id": "C-other", "recipients": ["medicaid"]}) + "\n",
        encoding="utf-8")
    return path


def test_explain_prints_a_table_of_fields_and_exits_0_on_permit() -> None:
    result = explain()
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("decision: PERMIT")
    row = next(line for line in out.splitlines() if line.startswith("child.birth_weight_grams"))
    assert "withheld" in row and "hipaa.care-coordination-authorization" in row
    assert "Lindqvist" not in out


def test_explain_with_consents_releases_health_facts(consents_file: Path) -> None:
    result = explain("--consents", consents_file)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines()
               if line.startswith("child.birth_weight_grams"))
    assert "released" in row
    assert "consents: county-general/CONSENT-HV-2026-0311" in result.stdout


@pytest.mark.parametrize(("recorded_by", "status"), [
    ("hv-nfp", "released"),       # county-general relies on hv-nfp's authorizations
    ("recovery-clinic", "withheld"),  # but not on a treatment program's
])
def test_explain_takes_consents_as_recorded_by_the_agency_named(
        consents_file: Path, recorded_by: str, status: str) -> None:
    result = explain("--consents", consents_file, "--recorded-by", recorded_by)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines()
               if line.startswith("child.birth_weight_grams"))
    assert status in row


def test_explain_json_is_the_decision_dict() -> None:
    result = explain("--json", event_type="referral", source="cw-hotline",
                     subscription="hv-referrals",
                     event=EXAMPLES / "referral.example.json")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["outcome"] == "permit"
    assert "reporter.name" in decision["withheld"]
    assert decision["subscription_id"] == "hv-referrals"


def test_explain_a_deny_exits_3_and_lists_obligations_when_permitted(tmp_path: Path) -> None:
    enrollment = EXAMPLES / "enrollment.example.json"
    denied = explain(event=enrollment, event_type="enrollment", source="recovery-clinic",
                     subscription="hv-sud-enrollments")
    assert denied.exit_code == 3
    assert denied.stdout.startswith("decision: DENY")
    consent = json.loads((EXAMPLES / "consent.example.json").read_text(encoding="utf-8"))
    consent.update(occurred_at="2026-11-01T00:00:00Z", effective_at="2026-11-01T00:00:00Z",
                   categories=["*"], disclosers=[])
    path = tmp_path / "c.json"
    path.write_text(json.dumps([consent]), encoding="utf-8")
    permitted = explain("--consents", path, event=enrollment, event_type="enrollment",
                        source="recovery-clinic", subscription="hv-sud-enrollments")
    assert permitted.exit_code == 0
    assert "obligations:\n  - cfr42.2-32-notice:" in permitted.stdout


def test_explain_at_a_time_before_the_agreement_denies() -> None:
    result = explain("--at", "2025-01-01T00:00:00Z")
    assert result.exit_code == 3
    assert "no agreement in force" in result.stdout


def test_explain_show_view_prints_the_record_received() -> None:
    result = explain("--show-view", event_type="birth", source="county-general",
                     subscription="eval-births")
    assert result.exit_code == 0
    view = json.loads(result.stdout[result.stdout.index("\n{") + 1:])
    assert view["child"]["birth_date"] == "2026-11"
    assert view["subject_id"].startswith("p_")


@pytest.mark.parametrize(("content", "args", "expected"), [
    ("{not json", (), "invalid JSON"),
    ('{"event_id": 7}', (), "does not match the schema: event_id: expected a string"),
    (None, ("--subscription", "nope"), "no subscription 'nope'"),
    (None, ("--type", "births"), "unknown event type 'births'"),
])
def test_explain_bad_input_is_one_line_and_exit_1(
        tmp_path: Path, content: str | None, args: tuple[str, ...], expected: str) -> None:
    event = EXAMPLES / "birth.example.json"
    if content is not None:
        event = tmp_path / "event.json"
        event.write_text(content, encoding="utf-8")
    options = {"subscription": "hv-births", "event_type": "birth"}
    if args:
        options[{"--subscription": "subscription", "--type": "event_type"}[args[0]]] = args[1]
    result = explain(event=event, **options)
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert expected in message


def test_explain_without_required_options_is_a_usage_error() -> None:
    assert run("explain", DEMO_DIR).exit_code == 2
