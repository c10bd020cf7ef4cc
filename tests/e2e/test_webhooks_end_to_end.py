"""End to end, as agencies would run it: `handoff serve` with a file-drop source and a FHIR
source, delivering the home visiting program's births to its webhook receiver.

A CSV of births dropped in a folder and a FHIR bundle posted by the hospital reach the
receiver (a real HTTP server) with only the permitted fields and valid signatures; a
receiver that fails for a while gets them once it recovers; one that keeps failing ends
in the dead-letter queue, from which a replay delivers them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from broker.audit import SqliteAuditStore
from broker.audit.paths import audit_db_path
from broker.audit.store import AuditFilter
from connectors.webhook_signing import WebhookSecret
from tests.e2e.harness import DEMO, BrokerProcess, Client
from tests.integration.fhir.bundles import birth_bundle
from tests.integration.webhooks.receiver_server import WebhookReceiver
from tests.waiting import eventually

pytestmark = pytest.mark.slow

SUB = "hv-births"
HEADER = ("mrn,recorded,child_mrn,child_first,child_last,dob,sex,weight,ga,nicu,exposure,"
          "mother_first,mother_last,mother_dob,ssn,medicaid,phone\n")
ROWS = [
    "MPI-7001,11/06/2026 14:20,C-7001,Amara,Lindqvist,11/06/2026,f,2410,36,yes,OPIOIDS,"
    "Jolene,Lindqvist,05/14/1995,512-44-9031,y,608-555-0142\n",
    "MPI-7002,11/06/2026 16:05,C-7002,Lucia,Delgado,11/06/2026,f,3350,39,no,NONE,"
    "Maria,Delgado,02/03/1999,398-20-4417,y,608-555-0163\n",
]
SSNS = ["512-44-9031", "398-20-4417", "623-41-7788"]   # the CSV's two and the bundle's
MAPPING = """\
event_type: birth
fields:
  subject_id: mrn
  occurred_at: {from: recorded, convert: [{datetime: "%m/%d/%Y %H:%M"}]}
  child.child_id: child_mrn
  child.first_name: child_first
  child.last_name: child_last
  child.birth_date: {from: dob, convert: [{date: "%m/%d/%Y"}]}
  child.sex: {from: sex, convert: [upper, {lookup: {F: FEMALE, M: MALE}}]}
  child.birth_weight_grams: {from: weight, convert: [int]}
  child.gestational_age_weeks: {from: ga, convert: [int]}
  child.nicu_admission: {from: nicu, convert: [bool]}
  child.substance_exposure: exposure
  mother.first_name: mother_first
  mother.last_name: mother_last
  mother.birth_date: {from: mother_dob, convert: [{date: "%m/%d/%Y"}]}
  mother.ssn: ssn
  mother.medicaid_covered_birth: {from: medicaid, convert: [bool]}
  mother.phone: {from: phone, default: null}
  hospital_id: {const: "1467533928"}
  county_fips: {const: "55025"}
"""


def start_broker(tmp: Path, receiver: WebhookReceiver, secret: str,
                 schedule: list[float]) -> BrokerProcess:
    policy = tmp / "policy"
    shutil.copytree(DEMO / "policy", policy)
    subs = yaml.safe_load((policy / "subscriptions.yaml").read_text())
    for entry in subs["subscriptions"]:
        if entry["id"] == SUB:
            entry["delivery"] = {"mode": "webhook", "url": receiver.url}
    (policy / "subscriptions.yaml").write_text(yaml.safe_dump(subs, sort_keys=False))
    (tmp / "drop").mkdir()
    (tmp / "births.yaml").write_text(MAPPING)
    (tmp / "connectors.yaml").write_text(yaml.safe_dump({"connectors": [
        {"name": "cgh-nightly", "type": "file_drop", "agency": "county-general",
         "folder": str(tmp / "drop"), "mapping": str(tmp / "births.yaml"),
         "min_age_seconds": 0, "poll_interval_seconds": 0.2},
        {"name": "cgh-fhir", "type": "fhir_r4", "agency": "county-general"},
    ]}))
    secrets = tmp / "webhook-secrets.yaml"
    secrets.write_text(yaml.safe_dump({SUB: [secret]}))
    secrets.chmod(0o600)
    return BrokerProcess(data_dir=tmp / "data", policy_dir=policy, env={
        "HANDOFF_CONNECTORS_FILE": str(tmp / "connectors.yaml"),
        "HANDOFF_WEBHOOKS__SECRETS_FILE": str(secrets),
        "HANDOFF_WEBHOOKS__SCHEDULE_SECONDS": json.dumps(schedule),
        "HANDOFF_WEBHOOKS__JITTER": "0",
        "HANDOFF_WEBHOOKS__TIMEOUT_SECONDS": "2",
    }).start()


@pytest.fixture
def secret() -> str:
    return WebhookSecret.generate().encoded()


@pytest.fixture
def receiver(secret: str) -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(secrets=[secret]).start()
    yield server
    server.stop()


@pytest.fixture
def broker_for(tmp_path: Path, receiver: WebhookReceiver, secret: str):
    started: list[BrokerProcess] = []

    def start(schedule: list[float]) -> BrokerProcess:
        started.append(start_broker(tmp_path, receiver, secret, schedule))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def drop_csv_and_post_bundle(broker: BrokerProcess, keys: dict[str, str], tmp: Path) -> None:
    part = tmp / "drop" / ".births-1106.csv"
    part.write_text(HEADER + "".join(ROWS))
    part.rename(tmp / "drop" / "births-1106.csv")     # appears whole, as exports should
    response = httpx.post(f"{broker.url}/v1/connectors/fhir/cgh-fhir/Bundle",
                          json=birth_bundle(), timeout=30, headers={
                              "Authorization": f"Bearer {keys['county-general']}",
                              "Content-Type": "application/fhir+json"})
    assert response.status_code == 202, response.text


def test_csv_and_fhir_births_reach_a_recovering_receiver_signed_and_minimal(
        broker_for, receiver, keys, tmp_path):
    receiver.script = [503, 500, 503, 502]     # down for a while, then back
    broker = broker_for([0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])
    drop_csv_and_post_bundle(broker, keys, tmp_path)

    assert receiver.wait_for(lambda r: len(r.delivered()) == 3, timeout=45), broker.logs()
    delivered = receiver.delivered()
    assert sorted(d["data"]["mother"]["first_name"] for d in delivered) == \
        ["Grace", "Jolene", "Maria"]
    assert all(r.error is None for r in receiver.requests)        # every signature valid
    for request in receiver.requests:
        body = request.body.decode()
        assert not any(ssn in body for ssn in SSNS)
        assert request.headers["webhook-id"] == json.loads(body)["decision_id"]
    assert all("mother.ssn" in d["withheld"] for d in delivered)
    assert all(d["source"] == "county-general" for d in delivered)
    assert (tmp_path / "drop" / "done" / "births-1106.csv").exists()
    assert len({d["decision_id"] for d in delivered}) == 3


def test_a_receiver_that_keeps_failing_ends_in_the_dead_letter_queue_until_replayed(
        broker_for, receiver, keys, tmp_path):
    receiver.default = 500
    broker = broker_for([0, 0.2])
    drop_csv_and_post_bundle(broker, keys, tmp_path)
    nfp = Client(broker.url, keys["hv-nfp"])
    try:
        letters = _dead_letters(nfp, 3)
        assert {d["reason"] for d in letters} == {"HTTP 500"}
        status = nfp.http.get(f"/v1/subscriptions/{SUB}/webhook").json()
        assert status["status"] == "failing" and status["dead_letters_pending"] == 3

        receiver.default = 204
        replay = nfp.http.post(f"/v1/subscriptions/{SUB}/dead-letters:replay")
        assert replay.status_code == 202, replay.text
        assert receiver.wait_for(lambda r: len(r.delivered()) == 3, timeout=30), \
            broker.logs()
        assert sorted(d["decision_id"] for d in receiver.delivered()) == \
            sorted(d["decision_id"] for d in letters)
    finally:
        nfp.close()
    broker.stop()
    store = SqliteAuditStore(audit_db_path(tmp_path / "data"))
    try:
        dead = list(store.iter_records(
            AuditFilter(kind="delivery_dead_lettered", subscription=SUB)))
        replayed = list(store.iter_records(
            AuditFilter(kind="delivery_replayed", subscription=SUB)))
    finally:
        store.close()
    assert sorted(r.decision_id for r in dead) == sorted(d["decision_id"] for d in letters)
    assert sorted(r.decision_id for r in replayed) == sorted(r.decision_id for r in dead)
    assert all(r.actor and r.actor != "webhook-dispatcher" for r in replayed)


def _dead_letters(client: Client, count: int) -> list[dict]:
    listed: list[dict] = []

    def enough() -> bool:
        listed[:] = client.http.get(f"/v1/subscriptions/{SUB}/dead-letters").json()[
            "dead_letters"]
        return len(listed) >= count

    eventually(enough, timeout=45, interval=0.2,
               message=lambda: f"{len(listed)} of {count} dead letters: {listed}")
    assert len(listed) == count, listed
    return listed

