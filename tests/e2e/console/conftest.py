"""A broker loaded with the demo's morning, a headless Chromium, and a signed-in page.

The browser is Debian's Chromium (/usr/bin/chromium) driven by Playwright for Python;
without it the browser tests skip, naming the Debian package `chromium` (`.ci/run`
installs it, and makes a missing one a failure). Screenshots go to
test-artifacts/console/ at the repository root.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.console.morning import play_morning
from tests.e2e.harness import DEMO, REPO, BrokerProcess, demo_keys
from tests.system_tools import system_tool

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
