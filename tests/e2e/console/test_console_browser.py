"""The console as a compliance officer uses it, in Debian's headless Chromium, against a
broker that decided the demo's morning. Each page is checked for what a person sees,
and photographed into test-artifacts/console/."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from broker.demo.story import STORY
from tests.e2e.console.conftest import ANA, JOLENE, screenshot
from tests.e2e.harness import BrokerProcess

pytestmark = pytest.mark.slow


class Console:
    """One signed-in browser page, failing the test on any Content-Security-Policy
    violation (an inline script or style would be one)."""

    def __init__(self, browser: Any, broker: BrokerProcess, key: str) -> None:
        self.url = broker.url
        self.context = browser.new_context(accept_downloads=True,
                                           viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.violations: list[str] = []
        self.page.on("console", lambda m: self.violations.append(m.text)
                     if "Content Security Policy" in m.text else None)
        self.page.goto(f"{self.url}/console/map")
        assert self.page.url.startswith(f"{self.url}/console/login")
        self.page.fill("#api_key", key)
        self.page.click("form[action='/console/login'] button[type=submit]")
        self.page.wait_for_url(f"{self.url}/console/map")

    def go(self, path: str) -> Any:
        self.page.goto(f"{self.url}{path}")
        return self.page

    def find_person(self, identifier: str) -> None:
        self.page.fill("#identifier", identifier)
        self.page.click("form.person button[type=submit]")
        self.page.wait_for_load_state()

    def close(self) -> None:
        assert not self.violations, self.violations
        self.context.close()


@pytest.fixture
def auditor(browser: Any, morning: BrokerProcess, console_keys: dict[str, str]
            ) -> Iterator[Console]:
    console = Console(browser, morning, console_keys["auditor"])
    yield console
    console.close()


def api(morning: BrokerProcess, key: str, path: str) -> Any:
    response = httpx.get(f"{morning.url}{path}", headers={"Authorization": f"Bearer {key}"},
                         timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_sharing_map_draws_every_agreement_in_force_and_opens_one(
        auditor: Console) -> None:
    page = auditor.page
    edges = page.locator("svg.sharing-map a.edge")
    drawn = {edges.nth(i).get_attribute("data-agreement") for i in range(edges.count())}
    listed = set(page.locator("#edges tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.agreement)"))
    assert "cgh-hv-births" in drawn and "dcf-hv-screened-out" in drawn
    assert drawn == listed
    row = page.locator('#edges tr[data-agreement="cgh-hv-births"]')
    assert row.locator("td").nth(0).inner_text() == "county-general → hv-nfp"
    released = int(row.locator("td.num").nth(0).inner_text())
    assert released >= 2  # Jolene's birth and its correction reached the home visitor
    screenshot(page, "map")
    page.locator('svg a.edge[data-agreement="cgh-hv-births"]').click()
    page.wait_for_url("**/console/map/agreements/cgh-hv-births*")
    assert "Newborn outreach" in page.inner_text("main")
    assert page.locator("#decision-rows tbody tr").count() >= 3
    screenshot(page, "agreement")


def test_a_decision_shows_every_field_by_name_with_its_fate(auditor: Console) -> None:
    page = auditor.go("/console/decisions")
    auditor.find_person(JOLENE)
    assert "subject=sp_" in page.url and JOLENE not in page.url
    rows = page.locator("#decisions tbody tr")
    assert rows.count() >= 3
    screenshot(page, "decisions")
    page.locator("#decisions tbody tr", has_text="cgh-hv-births").first.locator(
        "th a").click()
    page.wait_for_selector("#fields")
    fields = {r[0]: r[1] for r in page.locator("#fields tbody tr").evaluate_all(
        "rows => rows.map(r => [r.cells[0].innerText, r.cells[1].innerText])")}
    assert fields["mother.ssn"] == "withheld"
    assert fields["mother.phone"] == "released"
    assert len(fields) > 25  # every leaf field of the birth schema
    text = page.inner_text("main")
    assert "512-44-9031" not in text and "Lindqvist" not in text  # names, never values
    assert "county-general/CONSENT-HV-0311" in text or "hv-nfp" in text
    assert "recomputes" in text
    screenshot(page, "decision")


def test_the_accounting_matches_the_api_and_downloads_as_csv_and_pdf(
        auditor: Console, morning: BrokerProcess, console_keys: dict[str, str],
        tmp_path: Path) -> None:
    page = auditor.go("/console/accounting")
    auditor.find_person(JOLENE)
    expected = api(morning, console_keys["auditor"],
                   f"/v1/audit/disclosures/{JOLENE}")["disclosures"]
    assert expected
    shown = page.locator("#accounting tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText))")
    assert [(r[0], r[1], r[2].split(", "), r[3]) for r in shown] == [
        (d["date"], d["recipient"], d["data_disclosed"], d["purpose"]) for d in expected]
    screenshot(page, "accounting")

    with page.expect_download() as download:
        page.click("text=Download CSV")
    rows = list(csv.DictReader(io.StringIO(
        Path(download.value.path()).read_text(encoding="utf-8"))))
    assert [(r["Date"], r["Recipient"], r["Data disclosed"].split("; "), r["Legal basis"])
            for r in rows] == [(d["date"], d["recipient"], d["data_disclosed"],
                                "; ".join(d["legal_basis"])) for d in expected]

    with page.expect_download() as download:
        page.click("text=Download PDF")
    text = " ".join(p.extract_text() for p in PdfReader(download.value.path()).pages)
    assert "Accounting of disclosures" in text
    assert f"Disclosures: {len(expected)}" in text
    for d in expected:
        assert d["date"] in text and d["recipient"] in text


def test_consents_show_grant_revocation_refusal_and_the_releases_relying_on_them(
        auditor: Console) -> None:
    page = auditor.go("/console/consents")
    auditor.find_person(ANA)
    part2 = page.locator("section.consent", has_text="recovery-clinic/CONSENT-P2-0042")
    assert "revoked" in part2.locator("h2").inner_text()
    assert "hv-nfp" in part2.inner_text()  # the recipient it named
    assert part2.locator("table.releases tbody tr a").count() >= 1  # the outpatient move
    refused = page.locator("section.consent", has_text="CONSENT-HV-SELF")
    assert "refused" in refused.inner_text()
    assert "Reyes" not in page.inner_text("main")
    screenshot(page, "consents")


def _bundle_zip(policy: Path, tmp_path: Path) -> Path:
    """The broker's policy with mother.phone taken out of the hospital's agreement with
    the home visiting program."""
    archive = tmp_path / "policy-next.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(policy.rglob("*.yaml")):
            text = path.read_text(encoding="utf-8")
            if path.name == "county-general.yaml":
                text = text.replace("      - mother.phone\n", "", 1)
            out.writestr(f"policy/{path.relative_to(policy)}", text)
    return archive


def test_a_dry_run_shows_the_field_a_changed_agreement_stops_releasing(
        auditor: Console, morning: BrokerProcess, tmp_path: Path) -> None:
    page = auditor.go("/console/policy")
    page.set_input_files("#bundle", str(_bundle_zip(morning.policy_dir, tmp_path)))
    page.select_option("#hours", "24")
    page.click("form[action='/console/policy/trial'] button")
    page.wait_for_url("**/console/policy/trial")
    changes = page.locator("#field-changes tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText))")
    phone = [c for c in changes if c[2] == "mother.phone"]
    assert phone and phone[0][:2] == ["hv-births", "cgh-hv-births"]
    assert phone[0][3].startswith("fewer") and int(phone[0][4]) >= 2
    assert page.locator("button.danger").count() == 0  # auditors try, admins apply
    screenshot(page, "policy-dry-run")


def test_a_verification_runs_with_progress_and_vouches_for_a_decision(
        auditor: Console) -> None:
    page = auditor.go("/console/integrity")
    # This broker pins no key: the page says the key it uses is the one beside the data.
    assert "unpinned" in page.inner_text("main")
    page.click("#run-verify")
    page.wait_for_selector("#verify-result", timeout=60_000)
    assert page.inner_text("#verify-result").startswith("ok:")
    screenshot(page, "integrity")
    page = auditor.go("/console/decisions")
    page.locator("#decisions tbody tr th a").last.click()
    page.wait_for_selector("#fields")
    assert "Verified to signed checkpoint" in page.inner_text("h1")


def test_flow_draws_charts_from_the_brokers_metrics(auditor: Console) -> None:
    page = auditor.go("/console/flow")
    page.wait_for_selector("#charts[data-drawn=true]")
    totals = dict(page.locator("#events-by-type tbody tr").evaluate_all(
        "rows => rows.map(r => [r.cells[0].innerText, r.cells[1].innerText])"))
    published = Counter(step.event_type for step in STORY if not step.refused)
    assert int(totals["birth"]) == published["birth"]
    assert int(totals["enrollment"]) == published["enrollment"]
    assert page.locator("#latency tbody tr", has_text="hv-births").count() == 1
    screenshot(page, "flow")


def test_referrals_and_linkage_wait_for_their_services(auditor: Console) -> None:
    for path, name in (("/console/referrals", "referrals"), ("/console/linkage", "linkage")):
        page = auditor.go(path)
        assert "Not enabled" in page.inner_text("main")
        screenshot(page, name)


def test_an_admin_applies_a_tried_bundle_and_it_is_in_force(
        browser: Any, morning: BrokerProcess, console_keys: dict[str, str],
        tmp_path: Path) -> None:
    admin = Console(browser, morning, console_keys["admin"])
    try:
        page = admin.go("/console/policy")
        page.set_input_files("#bundle", str(_bundle_zip(morning.policy_dir, tmp_path)))
        page.click("form[action='/console/policy/trial'] button")
        page.wait_for_url("**/console/policy/trial")
        tried = page.inner_text("h1").removeprefix("Dry-run: ").strip()
        page.click("button.danger")
        page.wait_for_url("**/console/policy/apply/*")
        assert page.inner_text("h1") == f"Policy {tried} is in force"
        assert "mother.phone" not in (morning.policy_dir / "agreements" /
                                      "county-general.yaml").read_text().split("cgh-eval")[0]
        assert tried in admin.go("/console/map").inner_text("main")
    finally:
        admin.close()
