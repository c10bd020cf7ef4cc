"""A morning of exchange through a real `handoff serve`, checked as the agencies and the
compliance officer would check it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from broker.demo import story
from tests.e2e.harness import REPO, BrokerProcess, Client

pytestmark = pytest.mark.slow

JOLENE_SSN = "512-44-9031"
MARIA_SSN = "398-20-4417"
REPORTER = "Dana Whitcomb"
HEALTH_FIELDS = ("birth_weight_grams", "gestational_age_weeks", "nicu_admission",
                 "substance_exposure")


def build(step_index: int) -> tuple[str, str, dict]:
    step = story.STORY[step_index]
    return step.agency, step.event_type, step.build(datetime.now(UTC))


def test_each_subscriber_receives_exactly_what_policy_permits(broker: BrokerProcess, keys):
    clients = {a: Client(broker.url, k) for a, k in keys.items()}
    published: dict[str, list[str]] = {}

    def publish(agency: str, event_type: str, event: dict) -> str:
        clients[agency].publish_ok(event_type, event)
        published.setdefault(event["subject_id"], []).append(event["event_id"])
        return event["event_id"]

    # Jolene consents, then gives birth; Maria gives birth without consent.
    publish(*build(0))
    jolene_birth = publish(*build(1))
    maria_birth = publish(*build(2))
    # The hotline refers a screened-out family to home visiting.
    referral = publish(*build(3))
    # A Part 2 program enrolls Ana before and after her consent naming home visiting;
    # home visiting cannot record that consent for itself.
    ana_first = publish(*build(4))
    agency, event_type, self_granted = build(5)
    refused = clients[agency].publish(event_type, self_granted)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"] == "/problems/consent-refused"
    publish(*build(6))
    ana_second = publish(*build(7))
    # The hotline refers Jolene's family; home visiting accepts, tries, reaches her, she
    # enrolls (the enrollment names the referral) and the referral is completed.
    jolene_referral = publish(*build(8))
    statuses = [publish(*build(i)) for i in (9, 10, 11)]
    publish(*build(12))
    statuses.append(publish(*build(13)))
    hv = clients["hv-nfp"]
    births_before_revocation = hv.pull_all("hv-births", expect=2)
    publish(*build(14))                     # Jolene revokes
    jolene_after = publish(*build(15))      # corrected birth record after revocation
    publish(*build(16))                     # Ana revokes her Part 2 consent
    ana_exit = publish(*build(17))

    births = {e["event_id"]: e for e in hv.pull_all("hv-births", expect=3)}
    assert set(births) == {jolene_birth, maria_birth, jolene_after}
    # Order is kept per subject (key); two mothers' births may arrive either way round.
    assert {e["event_id"] for e in births_before_revocation} == {jolene_birth, maria_birth}

    # Never the SSN, in any subscription, in any form.
    everything = []
    for sub_id, agency in [("hv-births", "hv-nfp"), ("hv-referrals", "hv-nfp"),
                           ("hv-sud-enrollments", "hv-nfp"), ("eval-births", "state-evaluation"),
                           ("medicaid-hv-enrollments", "medicaid")]:
        response = clients[agency].http.get(f"/v1/subscriptions/{sub_id}/events",
                                            params={"limit": 1000})
        assert response.status_code == 200
        everything.append(response.text)
    blob = "\n".join(everything)
    assert JOLENE_SSN not in blob and MARIA_SSN not in blob
    assert REPORTER not in blob

    # Consent-gated health facts: only while Jolene's consent is in force.
    with_consent = births[jolene_birth]
    assert with_consent["data"]["mother"]["phone"] == "608-555-0142"
    assert all(with_consent["data"]["child"][f] is not None for f in HEALTH_FIELDS)
    for event_id in (maria_birth, jolene_after):
        delivered = births[event_id]
        assert all(delivered["data"]["child"].get(f) is None for f in HEALTH_FIELDS)
        assert {f"child.{f}" for f in HEALTH_FIELDS} <= set(delivered["withheld"])
    assert "mother.ssn" in with_consent["withheld"]
    assert "ssn" not in with_consent["data"]["mother"]

    # The referrals arrive without the reporter or the allegation narrative.
    referrals = {e["event_id"]: e for e in hv.pull_all("hv-referrals", expect=2)}
    assert set(referrals) == {referral, jolene_referral}
    delivered_referral = referrals[referral]
    assert delivered_referral["data"]["reason"] == "SCREENED_OUT_REPORT"
    assert delivered_referral["data"].get("reporter") is None
    assert {"reporter.name", "allegation_summary"} <= set(delivered_referral["withheld"])

    # The loop closes: the hotline hears what its feedback terms send back (not the
    # unanswered call), each status carrying no more than the feedback agreement lists.
    back = clients["cw-hotline"].pull_all("cw-referral-status", expect=3)
    assert [e["event_id"] for e in back] == [statuses[0], statuses[2], statuses[3]]
    assert [(e["data"]["status"], e["data"]["business_status"]) for e in back] == [
        ("ACCEPTED", None), ("IN_PROGRESS", "CONTACTED"), ("COMPLETED", "ENROLLED")]
    assert all(set(e["data"]) <= {"event_id", "occurred_at", "subject_id", "referral_id",
                                  "referrer", "recorded_by", "program_id", "status",
                                  "business_status", "reason"} for e in back)

    # Part 2: who the facts are about only while the clinic's consent is in force, with
    # the redisclosure notice.
    sud = hv.pull_all("hv-sud-enrollments", expect=1)
    assert [e["event_id"] for e in sud] == [ana_second]
    assert sud[0]["data"]["participant"]["last_name"] == "Reyes"
    assert any("42 CFR part 2" in o.get("text", "") for o in sud[0]["obligations"])

    # The compliance officer's view.
    auditor = clients["auditor"]
    denied = auditor.http.get("/v1/audit/decisions",
                              params={"outcome": "deny", "subscription": "hv-sud-enrollments"})
    assert denied.status_code == 200
    assert [r["event_id"] for r in denied.json()["records"]] == [ana_first, ana_exit]
    (permitted,) = auditor.http.get(
        "/v1/audit/decisions", params={"outcome": "permit",
                                       "subscription": "hv-sud-enrollments"}
    ).json()["records"]
    assert permitted["detail"]["consent_ids"] == ["recovery-clinic/CONSENT-P2-0042"]

    accounting = auditor.http.get(f"/v1/audit/disclosures/{story.JOLENE}").json()
    assert accounting["subject"].startswith("sp_") and story.JOLENE not in str(accounting)
    disclosed = {(d["decision_id"]) for d in accounting["disclosures"]}
    delivered_ids = set()
    for sub_id, agency in [("hv-births", "hv-nfp"), ("eval-births", "state-evaluation"),
                           ("medicaid-hv-enrollments", "medicaid"),
                           ("hv-referrals", "hv-nfp"), ("cw-referral-status", "cw-hotline")]:
        for event in clients[agency].pull_all(sub_id, expect=1):
            if event["event_id"] in published[story.JOLENE]:
                delivered_ids.add(event["decision_id"])
    assert delivered_ids and disclosed == delivered_ids

    # Subscribers cannot read each other's feeds; auditors cannot read deliveries.
    assert clients["medicaid"].http.get("/v1/subscriptions/hv-births/events").status_code == 403
    assert auditor.http.get("/v1/subscriptions/hv-births/events").status_code == 403
    for client in clients.values():
        client.close()


def test_audit_verify_detects_one_changed_byte(broker: BrokerProcess, keys):
    hospital = Client(broker.url, keys["county-general"])
    for i in (1, 2, 1):
        hospital.publish_ok(*build(i)[1:])
    Client(broker.url, keys["hv-nfp"]).pull_all("hv-births", expect=3)
    broker.stop()

    def verify() -> subprocess.CompletedProcess[str]:
        # As the compliance officer runs it, with the installation's settings: the data
        # directory on the embedded log, the Kafka settings (from HANDOFF_*) on Kafka.
        where = (["--public-key", str(broker.data_dir / "keys" / "audit-signing.pem.pub")]
                 if broker.backend.name == "kafka" else ["--data", str(broker.data_dir)])
        return subprocess.run(
            [sys.executable, "-m", "broker.cli.main", "audit", "verify", *where],
            capture_output=True, text=True, cwd=REPO, check=False,
            env=broker.environment())

    sound = verify()
    assert sound.returncode == 0, sound.stdout + sound.stderr

    if broker.backend.name == "kafka":
        seq = forge_a_kafka_audit_record(broker)
    else:
        seq = change_a_byte_of_an_embedded_audit_record(broker)

    tampered = verify()
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert f"record {seq}" in tampered.stdout + tampered.stderr


def change_a_byte_of_an_embedded_audit_record(broker: BrokerProcess) -> int:
    """Flips one byte of the last record's hash in the file; returns its seq. (The last
    record's hash is stored once: no later record holds it as its prev_hash.)"""
    audit_db = broker.data_dir / "audit.db"
    with sqlite3.connect(audit_db) as db:   # fold the WAL into the file we are editing
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        seq, stored = db.execute("SELECT seq, hash FROM audit_records "
                                 "ORDER BY seq DESC LIMIT 1").fetchone()
    raw = bytearray(audit_db.read_bytes())
    at = raw.find(bytes(stored))
    assert at > 0
    raw[at + 5] ^= 0x01
    audit_db.write_bytes(bytes(raw))
    return int(seq)


def forge_a_kafka_audit_record(broker: BrokerProcess) -> int:
    """Kafka records cannot be edited in place; someone with write access to the cluster
    can append a changed copy of one. Returns the copy's number in its chain."""
    from broker.audit.kafka_records import AUDIT_TOPIC
    from broker.log.kafka import KafkaEventLog
    from broker.log.port import NewRecord

    assert broker.backend.bootstrap_servers is not None
    log = KafkaEventLog(broker.backend.bootstrap_servers,
                        topic_prefix=broker.backend.topic_prefix)
    try:
        records = log.read(AUDIT_TOPIC, 0, 0, 10_000)
        # Each process writes a chain of its own (the router's is in its own process).
        original = next(r for r in records if b'"recipient":"hv-nfp"' in r.value)
        mine = [r for r in records if r.key == original.key]
        seq = next(n for n, r in enumerate(mine, start=1) if r is original)
        forged = original.value.replace(b'"recipient":"hv-nfp"', b'"recipient":"medicaid"')
        log.append(AUDIT_TOPIC, [NewRecord(value=forged, key=original.key,
                                           headers=original.headers)])
    finally:
        log.close()
    return seq
