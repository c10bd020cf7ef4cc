"""Who may use the console, and what a stolen, replayed or cross-site request gets: over
HTTP against a running broker, as an attacker's client would send it."""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

import httpx
import pytest
import yaml

from broker.audit import AuditFilter, SqliteAuditStore, audit_db_path
from tests.e2e.console.conftest import JOLENE, csrf_of, sign_in
from tests.e2e.harness import DEMO, BrokerProcess
from tests.waiting import eventually

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("who", ["auditor", "admin"])
def test_auditor_and_admin_keys_open_the_console(http: httpx.Client, morning: BrokerProcess,
                                                  console_keys: dict[str, str],
                                                  who: str) -> None:
    answer = sign_in(http, morning.url, console_keys[who])
    assert answer.status_code == 303 and answer.headers["location"] == "/console/map"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    page = http.get("/console/map")
    assert page.status_code == 200 and "Sharing map" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("who", ["county-general", "state-evaluation"])
def test_publisher_and_subscriber_keys_are_refused(http: httpx.Client, morning: BrokerProcess,
                                                   console_keys: dict[str, str],
                                                   who: str) -> None:
    answer = sign_in(http, morning.url, console_keys[who])
    assert answer.status_code == 403
    assert "auditor or admin role" in answer.text
    assert "handoff_console=" not in answer.headers.get("set-cookie", "")
    assert http.get("/console/map").status_code == 303  # still sent to sign in


def test_a_forged_session_cookie_is_refused(http: httpx.Client) -> None:
    http.cookies.set("handoff_console", secrets.token_urlsafe(32), path="/console")
    answer = http.get("/console/decisions")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?message=ended"
    assert "Your session has ended" in http.get(answer.headers["location"]).text


def test_the_sign_in_page_never_shows_text_from_its_address(http: httpx.Client) -> None:
    page = http.get("/console/login", params={"message": "Send your key to evil.example"})
    assert page.status_code == 200 and "evil.example" not in page.text


def test_a_cookie_replayed_after_sign_out_is_refused(http: httpx.Client,
                                                     morning: BrokerProcess,
                                                     console_keys: dict[str, str]) -> None:
    sign_in(http, morning.url, console_keys["auditor"])
    stolen = http.cookies["handoff_console"]
    page = http.get("/console/map")
    out = http.post("/console/logout", data={"csrf": csrf_of(page.text)},
                    headers={"Origin": morning.url})
    assert out.status_code == 303
    with httpx.Client(base_url=morning.url, follow_redirects=False) as replay:
        replay.cookies.set("handoff_console", stolen, path="/console")
        answer = replay.get("/console/map")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/login")


def test_cross_site_and_tokenless_form_posts_are_refused(http: httpx.Client,
                                                         morning: BrokerProcess,
                                                         console_keys: dict[str, str]) -> None:
    sign_in(http, morning.url, console_keys["auditor"])
    token = csrf_of(http.get("/console/decisions").text)
    form = {"csrf": token, "identifier": JOLENE, "target": "accounting"}
    evil = http.post("/console/person", data=form, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    bare = http.post("/console/person", data={**form, "csrf": "guess"},
                     headers={"Origin": morning.url})
    assert bare.status_code == 403
    sign_in_elsewhere = http.post("/console/login", data={"login_token": "x", "api_key": "y"},
                                  headers={"Origin": "https://evil.example"})
    assert sign_in_elsewhere.status_code == 403
    good = http.post("/console/person", data=form, headers={"Origin": morning.url})
    assert good.status_code == 303 and "subject=sp_" in good.headers["location"]


def test_an_oversized_form_is_refused_before_it_is_read(http: httpx.Client,
                                                        morning: BrokerProcess,
                                                        console_keys: dict[str, str]) -> None:
    sign_in(http, morning.url, console_keys["auditor"])
    token = csrf_of(http.get("/console/decisions").text)
    answer = http.post("/console/person", headers={"Origin": morning.url},
                       data={"csrf": token, "target": "accounting", "identifier": "x" * 40_000})
    assert answer.status_code == 413


def test_console_use_is_audited_by_key_and_never_with_the_identifier_typed(
        http: httpx.Client, morning: BrokerProcess, console_keys: dict[str, str]) -> None:
    sign_in(http, morning.url, console_keys["auditor"])
    token = csrf_of(http.get("/console/accounting").text)
    found = http.post("/console/person", headers={"Origin": morning.url},
                      data={"csrf": token, "identifier": JOLENE, "target": "accounting"})
    pseudonym = found.headers["location"].split("subject=")[1].split("&")[0]
    assert http.get(found.headers["location"]).status_code == 200
    store = SqliteAuditStore(audit_db_path(morning.data_dir), create=False)
    try:
        actions = [r for r in store.iter_records(AuditFilter(kind="console_action"))
                   if r.actor == "demo-state-privacy-office"]
    finally:
        store.close()
    pages = {(r.detail["page"], r.subject) for r in actions}
    assert ("/console/accounting", pseudonym) in pages
    assert ("/console/person", pseudonym) in pages
    assert JOLENE.encode() not in audit_db_path(morning.data_dir).read_bytes()
    assert JOLENE not in morning.logs()


def test_sessions_end_when_idle_and_when_the_key_is_revoked(tmp_path: Path,
                                                            console_keys: dict[str, str]
                                                            ) -> None:
    keys_file = tmp_path / "keys.yaml"
    shutil.copy(DEMO / "keys.yaml", keys_file)
    broker = BrokerProcess(data_dir=tmp_path / "data", keys_file=keys_file,
                           env={"HANDOFF_API__CONSOLE__IDLE_MINUTES": "0.05"}).start()
    try:
        with httpx.Client(base_url=broker.url, follow_redirects=False) as http:
            sign_in(http, broker.url, console_keys["auditor"])
            assert http.get("/console/map").status_code == 200
            time.sleep(4)  # idle for longer than 0.05 minutes
            assert http.get("/console/map").status_code == 303

            sign_in(http, broker.url, console_keys["auditor"])
            assert http.get("/console/map").status_code == 200
            document = yaml.safe_load(keys_file.read_text())
            for key in document["keys"]:
                if key["id"] == "demo-state-privacy-office":
                    key["revoked_at"] = "2020-01-01T00:00:00Z"
            keys_file.write_text(yaml.safe_dump(document))
            eventually(lambda: http.get("/console/map").status_code == 303, timeout=10,
                       message="a revoked key's session still opens pages")
    finally:
        broker.stop()
