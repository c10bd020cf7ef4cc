"""Closed-loop referrals through a real `handoff serve`, on both event logs: statuses reach
the referrer as the feedback agreement allows, an illegal transition is refused, a missed
service level raises exactly one `handoff_overdue` across a `kill -9` and a lost ledger
file, a late update clears it, and the funnel report counts what was published, with
small cells suppressed."""

from __future__ import annotations

import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.demo import story
from tests.e2e.harness import DEMO, BrokerProcess, Client, LogBackend
from tests.waiting import eventually

pytestmark = pytest.mark.slow

FAST_TICKS = {"HANDOFF_REFERRALS__TICK_SECONDS": "0.2"}


def referral(referral_id: str, subject: str, at: datetime) -> dict[str, Any]:
    event = story.referral(subject, referral_id, "Keisha", "Brown", "Jaylen")(at)
    return event


def status(referral_id: str, subject: str, at: datetime, new: str,
           business: str | None = None, reason: str | None = None,
           referrer: str = "cw-hotline") -> dict[str, Any]:
    event = story.status(subject, referral_id, new, business, reason)(at)
    event["referrer"] = referrer
    return event


def ids() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8].upper()
    return f"HL-{tag}", f"MPI-{tag}"


def pulled(client: Client, subscription: str, referral_id: str, expect: int
           ) -> list[dict[str, Any]]:
    return [e for e in client.pull_all(subscription, expect=expect)
            if e["data"]["referral_id"] == referral_id]


def test_statuses_reach_the_referrer_as_the_feedback_agreement_allows(
        broker: BrokerProcess, keys) -> None:
    hotline, nfp = Client(broker.url, keys["cw-hotline"]), Client(broker.url, keys["hv-nfp"])
    clinic = Client(broker.url, keys["recovery-clinic"])
    referral_id, subject = ids()
    t = datetime.now(UTC)
    hotline.publish_ok("referral", referral(referral_id, subject, t))
    # Another agency's referral to the same program, with the same number.
    clinic.publish_ok("referral", referral(referral_id, "MPI-OTHER", t))

    accepted = nfp.publish_ok("referral_status", status(
        referral_id, subject, t + timedelta(hours=1), "ACCEPTED"))
    nfp.publish_ok("referral_status", status(
        referral_id, subject, t + timedelta(hours=2), "IN_PROGRESS", "CONTACT_ATTEMPTED"))
    reached = nfp.publish_ok("referral_status", status(
        referral_id, subject, t + timedelta(hours=3), "IN_PROGRESS", "CONTACTED"))
    nfp.publish_ok("referral_status", status(
        referral_id, "MPI-OTHER", t + timedelta(hours=1), "ACCEPTED",
        referrer="recovery-clinic"))

    # An illegal transition is refused, naming both statuses; so is a status recorded in
    # another agency's name, and one for a referral nobody made.
    refused = nfp.publish("referral_status", status(
        referral_id, subject, t + timedelta(hours=4), "RECEIVED"))
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"] == "/problems/referral-refused"
    assert "a referral that is IN_PROGRESS cannot become RECEIVED" in refused.json()["detail"]
    forged = status(referral_id, subject, t + timedelta(hours=4), "CANCELLED")
    forged["recorded_by"] = "cw-hotline"
    assert nfp.publish("referral_status", forged).status_code == 403
    unknown = nfp.publish("referral_status", status(
        "HL-NOBODY", subject, t + timedelta(hours=4), "ACCEPTED"))
    assert unknown.status_code == 422 and "HL-NOBODY" not in unknown.text

    back = hotline.pull_all("cw-referral-status", expect=2)
    assert [e["event_id"] for e in back] == [accepted["event_id"], reached["event_id"]]
    assert [(e["data"]["status"], e["data"]["business_status"]) for e in back] == [
        ("ACCEPTED", None), ("IN_PROGRESS", "CONTACTED")]
    assert {e["data"]["referral_id"] for e in back} == {referral_id}
    assert {e["data"]["subject_id"] for e in back} == {subject}

    auditor = Client(broker.url, keys["auditor"])
    denied = auditor.http.get("/v1/audit/decisions", params={
        "subscription": "cw-referral-status", "outcome": "deny"}).json()["records"]
    assert sorted(r["detail"]["deny_reason"].split(":")[0] for r in denied) == [
        "agreement nfp-hotline-referral-status releases only records whose referrer is "
        "cw-hotline",
        "the feedback terms of referral terms hotline-to-nfp (referrals.yaml) do not send "
        "IN_PROGRESS with CONTACT_ATTEMPTED back to the referrer"]


def policy_due_at_once(tmp_path: Path) -> Path:
    """The demo policy with `received` due the moment a referral arrives."""
    target = tmp_path / "policy"
    shutil.copytree(DEMO / "policy", target)
    terms = target / "referrals.yaml"
    terms.write_text(terms.read_text().replace("received: 1 business day",
                                               "received: 0 hours"))
    return target


def alerts_for(client: Client, referral_id: str, expect: int) -> list[tuple[str, str]]:
    return [(e["data"]["service_level"], e["data"]["alert"])
            for e in pulled(client, "cw-handoff-alerts", referral_id, expect)]


def test_a_missed_service_level_raises_one_alert_across_kill_9_and_a_late_update_clears_it(
        tmp_path, keys, log_backend: LogBackend) -> None:
    first = BrokerProcess(data_dir=tmp_path / "data", policy_dir=policy_due_at_once(tmp_path),
                          backend=log_backend, env=FAST_TICKS).start()
    referral_id, subject = ids()
    t = datetime.now(UTC)
    Client(first.url, keys["cw-hotline"]).publish_ok("referral",
                                                     referral(referral_id, subject, t))
    hotline = Client(first.url, keys["cw-hotline"])
    assert alerts_for(hotline, referral_id, 1) == [("RECEIVED", "RAISED")]
    first.kill()
    # The ledger file is a view of the log: losing it with the process changes nothing.
    (first.data_dir / "referral-ledger.db").unlink()
    again = first.sibling("all", port=first.port).start()
    try:
        hotline = Client(again.url, keys["cw-hotline"])
        nfp = Client(again.url, keys["hv-nfp"])
        late = nfp.publish_ok("referral_status", status(
            referral_id, subject, datetime.now(UTC), "RECEIVED"))
        eventually(lambda: alerts_for(hotline, referral_id, 2)[-1:] == [
            ("RECEIVED", "CLEARED")], timeout=30, message="the late update cleared nothing")
        again.kill()
        again = again.sibling("all", port=again.port).start()
        hotline = Client(again.url, keys["cw-hotline"])
        # Some ticks later (there is nothing to wait for: nothing may happen), still one
        # alert and one clearing, to both parties.
        time.sleep(1.5)
        assert alerts_for(hotline, referral_id, 2) == [("RECEIVED", "RAISED"),
                                                        ("RECEIVED", "CLEARED")]
        nfp = Client(again.url, keys["hv-nfp"])
        assert [(e["data"]["alert"]) for e in pulled(
            nfp, "hv-handoff-alerts", referral_id, 2)] == ["RAISED", "CLEARED"]
        auditor = Client(again.url, keys["auditor"])
        records = auditor.http.get("/v1/audit/decisions", params={
            "subscription": "cw-handoff-alerts", "limit": 500}).json()["records"]
        mine = [r for r in records if r["outcome"] == "permit"]
        assert len(mine) == len({r["event_id"] for r in mine}) == 2
        assert late["duplicate"] is False
    finally:
        again.stop()


def test_the_report_counts_what_was_published_and_suppresses_small_cells(
        tmp_path, keys, log_backend: LogBackend) -> None:
    broker = BrokerProcess(data_dir=tmp_path / "data", backend=log_backend,
                           env={"HANDOFF_REFERRALS__REPORT_THRESHOLD": "1"}).start()
    try:
        hotline, nfp = (Client(broker.url, keys[a]) for a in ("cw-hotline", "hv-nfp"))
        clinic = Client(broker.url, keys["recovery-clinic"])
        t = datetime.now(UTC)
        made = [ids() for _ in range(5)]
        for n, (referral_id, subject) in enumerate(made):
            hotline.publish_ok("referral", referral(referral_id, subject, t))
            if n < 3:
                nfp.publish_ok("referral_status", status(
                    referral_id, subject, t + timedelta(days=1), "ACCEPTED"))
            if n < 2:
                nfp.publish_ok("referral_status", status(
                    referral_id, subject, t + timedelta(days=2), "IN_PROGRESS", "CONTACTED"))
        clinic.publish_ok("referral", referral(*ids(), t))
        month = t.strftime("%Y-%m")

        auditor = Client(broker.url, keys["auditor"])
        report = auditor.http.get("/v1/reports/referrals").json()
        rows = {(r["program"], r["source"], r["month"]): r for r in report["rows"]}
        hotline_cell = rows[("nfp-dane-county", "cw-hotline", month)]
        assert (hotline_cell["referred"], hotline_cell["accepted"],
                hotline_cell["first_contact"], hotline_cell["enrolled"]) == (5, 3, 2, 0)
        assert rows[("nfp-dane-county", "recovery-clinic", month)]["referred"] == 1
        assert rows[("nfp-dane-county", "*", "*")]["referred"] == 6

        # With a threshold of 3 the clinic's single referral is hidden, and so is the
        # hotline's 5, or the program total (6) would give the 1 away.
        evaluator = Client(broker.url, keys["state-evaluation"])
        suppressed = evaluator.http.get("/v1/reports/referrals",
                                        params={"threshold": 3}).json()
        rows = {(r["program"], r["source"], r["month"]): r for r in suppressed["rows"]}
        assert rows[("nfp-dane-county", "recovery-clinic", month)]["referred"] is None
        assert rows[("nfp-dane-county", "cw-hotline", month)]["referred"] is None
        assert rows[("nfp-dane-county", "*", "*")]["referred"] == 6
        assert suppressed["threshold"] == 3

        csv = evaluator.http.get("/v1/reports/referrals",
                                 params={"threshold": 3, "format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        assert f"nfp-dane-county,recovery-clinic,{month},*" in csv.text
        # Aggregates only: no referral number, no subject, anywhere in the report.
        assert not any(r in csv.text or r in str(suppressed) for r, _ in made)
        assert nfp.http.get("/v1/reports/referrals").status_code == 403
    finally:
        broker.stop()


def test_a_split_api_process_checks_statuses_against_a_ledger_it_catches_up(
        tmp_path, keys, log_backend: LogBackend) -> None:
    router = BrokerProcess(data_dir=tmp_path / "data", backend=log_backend, role="router",
                           env=FAST_TICKS).start()
    api = router.sibling("api,delivery").start()
    try:
        hotline = Client(api.url, keys["cw-hotline"])
        nfp = Client(api.url, keys["hv-nfp"])
        for _ in range(3):
            referral_id, subject = ids()
            t = datetime.now(UTC)
            hotline.publish_ok("referral", referral(referral_id, subject, t))
            # At once: the API process's ledger has not seen the referral until it
            # catches up with the log, which it does before checking.
            nfp.publish_ok("referral_status", status(
                referral_id, subject, t + timedelta(minutes=1), "ACCEPTED"))
            refused = nfp.publish("referral_status", status(
                referral_id, subject, t + timedelta(minutes=2), "RECEIVED"))
            assert refused.status_code == 422, refused.text
            assert "ACCEPTED cannot become RECEIVED" in refused.json()["detail"]
        assert len(hotline.pull_all("cw-referral-status", expect=3)) == 3
    finally:
        api.stop()
        router.stop()
