"""The referrals and linkage review pages in Debian's headless Chromium, against the
broker that decided the demo's morning: the funnel as the report API gives it, and a
data steward deciding an uncertain match from the page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from referrals.report import COUNTS
from tests.e2e.console.conftest import (
    Console,
    api,
    csrf_of,
    open_review,
    screenshot,
    sign_in,
)
from tests.e2e.harness import BrokerProcess

pytestmark = pytest.mark.slow
STEWARD_KEY_ID = "demo-state-data-stewards"


@pytest.fixture
def steward(browser: Any, morning: BrokerProcess, console_keys: dict[str, str]
            ) -> Iterator[Console]:
    console = Console(browser, morning, console_keys["steward"], home="/console/linkage")
    yield console
    console.close()


def test_the_referral_funnel_is_the_reports_own_rows(
        auditor: Console, morning: BrokerProcess, console_keys: dict[str, str]) -> None:
    report = api(morning, console_keys["auditor"], "/v1/reports/referrals?format=json")
    expected = {(r["level"], r["program"], r["source"], r["month"]):
                {c: r[c] for c in COUNTS} for r in report["rows"]}
    page = auditor.go("/console/referrals")
    shown = {}
    for row in page.locator("#funnel tbody tr").all():
        key = tuple(row.get_attribute(a) for a in ("data-level", "data-program",
                                                   "data-source", "data-month"))
        cells = {c: row.locator(f'td[data-count="{c}"]').inner_text() for c in COUNTS}
        shown[key] = {c: None if text == "suppressed" else int(text)
                      for c, text in cells.items()}
    # The morning's two referrals to home visiting: one program, one month, every
    # count under the threshold, so every cell is suppressed, on the page as in the API.
    assert ("cell", "nfp-dane-county", "cw-hotline", report["rows"][0]["month"]) in expected
    assert shown == expected
    assert any(v is None for counts in shown.values() for v in counts.values())
    assert f"a count under {report['threshold']} is suppressed" in page.inner_text("main")
    assert page.locator("#overdue tbody tr").count() >= 1  # a row, or "No handoff ..."
    screenshot(page, "referrals")


def test_a_steward_decides_a_review_item_from_the_page(
        steward: Console, morning: BrokerProcess, console_keys: dict[str, str]) -> None:
    item = open_review(morning, console_keys)
    page = steward.go("/console/linkage")
    nav = page.inner_text("nav")
    assert "Linkage review" in nav and "Sharing map" not in nav and "Referrals" not in nav
    section = page.locator(f'section[data-review="{item.review_id}"]')
    evidence = {r.locator("th").inner_text(): r.locator("td").nth(0).inner_text()
                for r in section.locator("table.evidence tbody tr").all()}
    assert {"given_name", "family_name", "street_address"} <= set(evidence)
    text = page.inner_text("main")
    assert item.family_name not in text and item.mrn not in text and "Elm" not in text
    screenshot(page, "linkage")
    section.locator("button.accept").click()
    page.wait_for_url(f"**/console/linkage?decided={item.review_id}")
    assert "same person" in page.inner_text("#decided")
    assert page.locator(f'section[data-review="{item.review_id}"]').count() == 0
    decided = api(morning, console_keys["steward"], f"/v1/linkage/reviews/{item.review_id}")
    assert decided["status"] == "same" and decided["resolved_by"] == STEWARD_KEY_ID
    # A steward's key opens the review queue, not the audit log's pages.
    assert steward.go("/console/decisions").locator("h1").inner_text() != "Decisions"
    assert "auditor or admin" in page.inner_text("main")


def test_an_auditor_reads_the_queue_without_buttons(
        auditor: Console, morning: BrokerProcess, console_keys: dict[str, str]) -> None:
    item = open_review(morning, console_keys)
    page = auditor.go("/console/linkage")
    section = page.locator(f'section[data-review="{item.review_id}"]')
    assert section.locator("table.evidence tbody tr").count() >= 3
    assert section.locator("form, button").count() == 0
    assert "needs a key with the steward role" in page.inner_text("#read-only")
    screenshot(page, "linkage-read-only")


def test_an_api_process_reading_a_replica_shows_the_queue_read_only(
        browser: Any, morning: BrokerProcess,
        console_keys: dict[str, str]) -> None:
    item = open_review(morning, console_keys)
    replica = morning.sibling("api").start()
    try:
        console = Console(browser, replica, console_keys["steward"], home="/console/linkage")
        try:
            page = console.go("/console/linkage")
            section = page.locator(f'section[data-review="{item.review_id}"]')
            assert section.count() == 1 and section.locator("button").count() == 0
            assert "reads a replica of the person index" in page.inner_text("#read-only")
        finally:
            console.close()
        with httpx.Client(base_url=replica.url, timeout=30) as http:
            sign_in(http, replica.url, console_keys["steward"])
            token = csrf_of(http.get("/console/linkage").text)
            refused = http.post(f"/console/linkage/reviews/{item.review_id}/resolve",
                                data={"csrf": token, "decision": "same"},
                                headers={"Origin": replica.url})
            assert refused.status_code == 409
            assert "router role" in refused.text
    finally:
        replica.stop()
    still = api(morning, console_keys["steward"], f"/v1/linkage/reviews/{item.review_id}")
    assert still["status"] == "open"
