"""A broker loaded with the demo's morning, a headless Chromium, and a signed-in page.

The browser is Debian's Chromium (/usr/bin/chromium) driven by Playwright for Python;
without it the browser tests skip, naming the Debian package `chromium` (`.ci/run`
installs it, and makes a missing one a failure). Screenshots go to
test-artifacts/console/ at the repository root.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.console.morning import play_morning
from tests.e2e.harness import DEMO, REPO, BrokerProcess, Client, demo_keys
from tests.e2e.test_linkage import a_mother, birth, referral
from tests.system_tools import system_tool
from tests.waiting import eventually

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "console"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
JOLENE = "MPI-0048213"
ANA = "MPI-0049902"


@pytest.fixture(scope="session")
def console_keys() -> dict[str, str]:
    return demo_keys()


@pytest.fixture(scope="session")
def morning(tmp_path_factory: pytest.TempPathFactory, console_keys: dict[str, str]
            ) -> Iterator[BrokerProcess]:
    """A broker (own copies of the demo policy and keys, which tests change) that has
    decided the demo's morning."""
    root = tmp_path_factory.mktemp("console")
    policy = root / "policy"
    shutil.copytree(DEMO / "policy", policy)
    keys_file = root / "keys.yaml"
    shutil.copy(DEMO / "keys.yaml", keys_file)
    broker = BrokerProcess(data_dir=root / "data", policy_dir=policy,
                           keys_file=keys_file).start()
    try:
        play_morning(broker.url, console_keys)
        yield broker
    finally:
        broker.stop()


def sign_in(client: httpx.Client, url: str, key: str) -> httpx.Response:
    """Sign in through the login form as a browser would; returns the POST's answer."""
    form = client.get("/console/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, form.text
    return client.post("/console/login", data={"login_token": token.group(1),
                                               "api_key": key},
                       headers={"Origin": url})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no form token on the page"
    return found.group(1)


@pytest.fixture
def http(morning: BrokerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=morning.url, follow_redirects=False, timeout=30) as client:
        yield client


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    executable = str(CHROMIUM) if CHROMIUM.exists() else system_tool("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def screenshot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


class Console:
    """One signed-in browser page, failing the test on any Content-Security-Policy
    violation (an inline script or style would be one)."""

    def __init__(self, browser: Any, broker: BrokerProcess, key: str,
                 home: str = "/console/map") -> None:
        self.url = broker.url
        self.context = browser.new_context(accept_downloads=True,
                                           viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.violations: list[str] = []
        self.page.on("console", lambda m: self.violations.append(m.text)
                     if "Content Security Policy" in m.text else None)
        self.page.goto(f"{self.url}/console")
        assert self.page.url.startswith(f"{self.url}/console/login")
        self.page.fill("#api_key", key)
        self.page.click("form[action='/console/login'] button[type=submit]")
        self.page.wait_for_url(f"{self.url}{home}")

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


@dataclass(frozen=True)
class OpenReview:
    review_id: str
    family_name: str
    mrn: str


def open_review(broker: BrokerProcess, keys: dict[str, str]) -> OpenReview:
    """A review item of this test alone: the hotline refers a mother, then the hospital
    registers her baby's birth under its own MRN with another street address and phone
    in the same ZIP, which the model finds uncertain (as tests/e2e/test_linkage.py)."""
    hotline, hospital = Client(broker.url, keys["cw-hotline"]), Client(
        broker.url, keys["county-general"])
    steward = Client(broker.url, keys["steward"])
    intake, mrn = f"HL-I-{uuid.uuid4().hex[:6]}", f"CGH-{uuid.uuid4().hex[:6]}"
    mother = a_mother()
    # Addresses and phones of this item alone, so no other test's people are candidates.
    n = uuid.uuid4().int
    home = {"street_address": f"{100 + n % 900} Larkspur Ct",
            "phone": f"608-555-{n % 10_000:04d}"}
    moved = {"street_address": f"{1 + n % 97} Elm St",
             "phone": f"608-556-{(n // 10_000) % 10_000:04d}"}
    try:
        hotline.publish_ok("referral", referral(intake, mother, **home))
        eventually(lambda: steward.http.get(
            f"/v1/linkage/records/cw-hotline/{intake}").status_code == 200, timeout=15,
            message="the hotline's record was not linked")
        hospital.publish_ok("birth", birth(mrn, mother, **moved))
        found: list[str] = []

        def queued() -> bool:
            found[:] = [r["review_id"] for r in
                        steward.http.get("/v1/linkage/reviews").json()["reviews"]
                        if r["record"]["id"] == mrn]
            return bool(found)

        eventually(queued, timeout=15, message="no review item for the hospital's record")
    finally:
        for client in (hotline, hospital, steward):
            client.close()
    return OpenReview(found[0], mother["last_name"], mrn)
