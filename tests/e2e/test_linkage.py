"""Record linkage through a real `handoff serve`, as agencies, a data steward and a
compliance officer use it over HTTP: one mother known to the hospital by an MRN and to
the hotline by an intake id, her hotline consent at the hospital, the review queue, a
reversible unlink, and birth match.

The consent case runs on both backends (the `broker` fixture); the rest on the
embedded log.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker.audit import SqliteAuditStore
from broker.audit.paths import audit_db_path
from broker.audit.store import AuditFilter
from broker.demo import story
from tests.e2e.harness import BrokerProcess, Client
from tests.waiting import eventually

pytestmark = pytest.mark.slow

HEALTH = ("birth_weight_grams", "gestational_age_weeks", "nicu_admission")


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def a_mother() -> dict[str, str]:
    """A mother of this test alone: names and a date of birth no other test shares, so
    the broker (shared by the module's tests) never links two tests' mothers."""
    rng = random.Random(uuid.uuid4().int)
    letters = "bdfgklmnprstvz"
    given = "Jo" + "".join(rng.choice(letters) + rng.choice("aeiou") for _ in range(3))
    family = "Ly" + "".join(rng.choice(letters) + rng.choice("aeiou") for _ in range(4))
    born = datetime(1980, 1, 1) + timedelta(days=rng.randrange(20 * 365))
    return {"first_name": given.capitalize(), "last_name": family.capitalize(),
            "birth_date": born.date().isoformat()}


def referral(intake_id: str, mother: dict[str, str], **caregiver: Any) -> dict[str, Any]:
    """The hotline's referral of the mother, under its own intake id (no date of birth)."""
    event = story.referral(intake_id, f"HL-{uuid.uuid4().hex[:8]}", mother["first_name"],
                           mother["last_name"], "Amara")(datetime.now(UTC))
    event["caregiver"].update({"phone": "608-555-0142", "street_address": "418 Larkspur Ct",
                               "zip": "53703", **caregiver})
    return event


def birth(mrn: str, mother: dict[str, str], **changes: Any) -> dict[str, Any]:
    """County General's birth record of her daughter, under the hospital's MRN."""
    event = story.STORY[1].build(datetime.now(UTC))
    event["subject_id"] = mrn
    event["mother"].update({**mother, **changes})
    return event


def hotline_consent(intake_id: str) -> dict[str, Any]:
    """Jolene's HIPAA authorization, taken by a hotline worker under the intake id: the
    hospital discloses her health facts to home visiting."""
    now = datetime.now(UTC)
    return {"event_id": str(uuid.uuid4()), "occurred_at": _iso(now), "subject_id": intake_id,
            "consent_id": f"HL-AUTH-{uuid.uuid4().hex[:6]}", "action": "GRANT",
            "grantor": {"name": "Jolene Lindqvist", "relationship": "SELF"},
            "recipients": ["hv-nfp"], "purposes": ["care_coordination"],
            "categories": ["health", "benefits", "sud"],
            "effective_at": _iso(now - timedelta(minutes=1)), "expires_at": None,
            "form_reference": None, "disclosers": ["county-general"]}


def births_for(nfp: Client, expect: int) -> dict[str, dict[str, Any]]:
    return {e["event_id"]: e for e in nfp.pull_all("hv-births", expect=expect)}


def person_of(steward: Client, agency: str, agency_id: str) -> str:
    response = steward.http.get(f"/v1/linkage/records/{agency}/{agency_id}")
    assert response.status_code == 200, response.text
    person: str = response.json()["person_id"]
    return person


def wait_for_person(steward: Client, agency: str, agency_id: str) -> str:
    found: list[str] = []

    def linked() -> bool:
        response = steward.http.get(f"/v1/linkage/records/{agency}/{agency_id}")
        if response.status_code == 200:
            found.append(response.json()["person_id"])
        return bool(found)

    eventually(linked, timeout=15, message=f"{agency} record not linked")
    return found[-1]


def test_her_hotline_consent_governs_the_hospitals_events(broker: BrokerProcess, keys):
    hotline, hospital = Client(broker.url, keys["cw-hotline"]), Client(
        broker.url, keys["county-general"])
    nfp, steward = Client(broker.url, keys["hv-nfp"]), Client(broker.url, keys["steward"])
    intake, mrn = f"HL-I-{uuid.uuid4().hex[:6]}", f"CGH-{uuid.uuid4().hex[:6]}"
    mother = a_mother()
    hotline.publish_ok("referral", referral(intake, mother))
    wait_for_person(steward, "cw-hotline", intake)
    before = hospital.publish_ok("birth", birth(mrn, mother))["event_id"]
    births = births_for(nfp, expect=1)
    assert all(births[before]["data"]["child"][f] is None for f in HEALTH)
    # One person: the hospital's MRN and the hotline's intake id.
    person = person_of(steward, "county-general", mrn)
    assert person == person_of(steward, "cw-hotline", intake)
    hotline.publish_ok("consent", hotline_consent(intake))
    after = hospital.publish_ok("birth", birth(mrn, mother))["event_id"]
    births = births_for(nfp, expect=2)
    assert all(births[after]["data"]["child"][f] is not None for f in HEALTH)
    assert births[after]["data"]["subject_id"] == mrn      # the hospital's own id, as sent
    for client in (hotline, hospital, nfp, steward):
        client.close()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(data_dir=tmp_path_factory.mktemp("linkage") / "data").start()
    try:
        yield process
    finally:
        process.stop()


def test_one_person_one_accounting_across_agencies(embedded: BrokerProcess, keys):
    hotline, hospital = Client(embedded.url, keys["cw-hotline"]), Client(
        embedded.url, keys["county-general"])
    auditor, steward = Client(embedded.url, keys["auditor"]), Client(embedded.url,
                                                                       keys["steward"])
    intake, mrn = f"HL-I-{uuid.uuid4().hex[:6]}", f"CGH-{uuid.uuid4().hex[:6]}"
    mother = a_mother()
    referral_id = hotline.publish_ok("referral", referral(intake, mother))["event_id"]
    birth_id = hospital.publish_ok("birth", birth(mrn, mother))["event_id"]
    person = wait_for_person(steward, "county-general", mrn)
    records = steward.http.get(f"/v1/linkage/persons/{person}").json()["records"]
    assert {(r["agency"], r["id"]) for r in records} == {("cw-hotline", intake),
                                                         ("county-general", mrn)}

    def accounted() -> set[str]:
        body = auditor.http.get(f"/v1/linkage/persons/{person}/disclosures").json()
        return {d["event_id"] for d in body["disclosures"]}

    eventually(lambda: {referral_id, birth_id} <= accounted(), timeout=15,
               message="the accounting lacks the hotline's or the hospital's disclosures")
    # Asked by the hospital's own id, the accounting covers the whole person too.
    by_mrn = auditor.http.get(f"/v1/audit/disclosures/{mrn}",
                              params={"agency": "county-general"}).json()
    assert {referral_id, birth_id} <= {d["event_id"] for d in by_mrn["disclosures"]}
    assert mrn not in str(by_mrn) and intake not in str(by_mrn)


def test_an_uncertain_pair_is_reviewed_and_the_decision_rekeys_what_followed(
        embedded: BrokerProcess, keys):
    hotline, hospital = Client(embedded.url, keys["cw-hotline"]), Client(
        embedded.url, keys["county-general"])
    nfp, steward = Client(embedded.url, keys["hv-nfp"]), Client(embedded.url,
                                                                  keys["steward"])
    auditor = Client(embedded.url, keys["auditor"])
    intake, mrn = f"HL-I-{uuid.uuid4().hex[:6]}", f"CGH-{uuid.uuid4().hex[:6]}"
    mother = a_mother()
    hotline.publish_ok("referral", referral(intake, mother))
    candidate = wait_for_person(steward, "cw-hotline", intake)
    hotline.publish_ok("consent", hotline_consent(intake))
    # The hospital has her at another address in the same ZIP, with another phone.
    moved = {"street_address": "9 Elm St", "phone": "608-555-0999"}
    first = hospital.publish_ok("birth", birth(mrn, mother, **moved))["event_id"]
    reviews: list[dict[str, Any]] = []

    def queued() -> bool:
        reviews[:] = [r for r in steward.http.get("/v1/linkage/reviews").json()["reviews"]
                      if r["record"]["id"] == mrn]
        return bool(reviews)

    eventually(queued, timeout=15, message="no review item for the hospital's record")
    (review,) = reviews
    assert review["candidate"]["person_id"] == candidate
    assert {e["field"] for e in review["evidence"]} >= {"given_name", "family_name",
                                                        "street_address"}
    assert mother["last_name"] not in str(review) and "Elm" not in str(review["evidence"])
    # Until a steward decides, the hotline's consent does not reach the hospital's record.
    before = births_for(nfp, expect=1)
    assert before[first]["data"]["child"]["birth_weight_grams"] is None
    assert steward.http.post(f"/v1/linkage/reviews/{review['review_id']}:resolve",
                             json={"decision": "maybe"}).status_code == 422
    decided = steward.http.post(f"/v1/linkage/reviews/{review['review_id']}:resolve",
                                json={"decision": "same"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["rekeys"][0]["record"]["id"] == mrn
    again = steward.http.post(f"/v1/linkage/reviews/{review['review_id']}:resolve",
                              json={"decision": "same"})
    assert again.status_code == 409 and again.json()["type"] == "/problems/review-closed"
    assert person_of(steward, "county-general", mrn) == candidate
    second = hospital.publish_ok("birth", birth(mrn, mother, **moved))["event_id"]
    after = {e["event_id"]: e for e in nfp.pull_all("hv-births", expect=2)
             if e["event_id"] in (first, second)}
    assert after[second]["data"]["child"]["birth_weight_grams"] is not None
    # The accounting follows: the person now has the hospital's earlier disclosures too.
    body = auditor.http.get(f"/v1/linkage/persons/{candidate}/disclosures").json()
    assert {first, second} <= {d["event_id"] for d in body["disclosures"]}


def test_an_unlink_is_audited_and_reversible(embedded: BrokerProcess, keys):
    hotline, hospital = Client(embedded.url, keys["cw-hotline"]), Client(
        embedded.url, keys["county-general"])
    steward = Client(embedded.url, keys["steward"])
    intake, mrn = f"HL-I-{uuid.uuid4().hex[:6]}", f"CGH-{uuid.uuid4().hex[:6]}"
    mother = a_mother()
    hotline.publish_ok("referral", referral(intake, mother))
    wait_for_person(steward, "cw-hotline", intake)
    hospital.publish_ok("birth", birth(mrn, mother))
    person = wait_for_person(steward, "county-general", mrn)
    assert person == person_of(steward, "cw-hotline", intake)
    record = {"agency": "county-general", "id": mrn}
    assert steward.http.post("/v1/linkage/records:unlink",
                             json={**record, "reason": "because"}).status_code == 422
    missing = steward.http.post("/v1/linkage/records:unlink",
                                json={**record, "id": "nobody", "reason": "wrong_link"})
    assert missing.status_code == 404 and missing.json()["type"] == "/problems/unknown-record"
    unlinked = steward.http.post("/v1/linkage/records:unlink",
                                 json={**record, "reason": "wrong_link"})
    assert unlinked.status_code == 200, unlinked.text
    assert person_of(steward, "county-general", mrn) != person
    seq = unlinked.json()["seqs"][0]
    undone = steward.http.post(f"/v1/linkage/changes/{seq}:undo",
                               json={"reason": "review_error"})
    assert undone.status_code == 200, undone.text
    assert person_of(steward, "county-general", mrn) == person
    store = SqliteAuditStore(audit_db_path(embedded.data_dir), create=False)
    try:
        unlinks = list(store.iter_records(AuditFilter(kind="linkage_unlinked")))
        relinks = [r for r in store.iter_records(AuditFilter(kind="linkage_linked"))
                   if r.detail["method"] == "clerical"]
    finally:
        store.close()
    mine = [r for r in unlinks if r.detail["seq"] == seq]
    assert len(mine) == 1 and mine[0].actor == "demo-state-data-stewards"
    assert mine[0].detail["reason"] == "wrong_link" and mrn not in str(mine[0].to_dict())
    assert any(r.detail["seq"] > seq for r in relinks)


def test_birth_match_delivers_matches_only(embedded: BrokerProcess, keys):
    hotline, records = Client(embedded.url, keys["cw-hotline"]), Client(
        embedded.url, keys["vital-records"])
    tag = uuid.uuid4().hex[:6]
    entry = story.watch_list_entry(f"CW-{tag}", f"TPR-{tag}", "PRIOR_TPR", "Dana",
                                   f"Okafor{tag}", "1994-03-08", "12 Birch Rd", "53716",
                                   "608-555-0177")(datetime.now(UTC))
    hotline.publish_ok("watch_list_entry", entry)
    on_list = story.birth(f"VR-{tag}-1", f"VR-CH-{tag}-1", "Ada", f"Okafor{tag}", "Dana",
                          "1994-03-08", "UNKNOWN", 3000, 39, False, None, None, "53716",
                          "608-555-0177", "000-00-0000", None,
                          street="12 Birch Rd")(datetime.now(UTC))
    off_list = copy.deepcopy(on_list)
    off_list.update(event_id=str(uuid.uuid4()), subject_id=f"VR-{tag}-2")
    off_list["mother"].update(first_name="Rosa", last_name=f"Vance{tag}",
                              birth_date="1990-01-01", phone="608-555-0101")
    records.publish_ok("birth", off_list)
    records.publish_ok("birth", on_list)
    matches = [m for m in hotline.pull_all("cw-birth-matches", expect=1)
               if m["data"]["entry_id"] == f"TPR-{tag}"]
    assert [m["data"]["birth_event_id"] for m in matches] == [on_list["event_id"]]
    (match,) = matches
    assert match["data"]["subject_id"] == f"CW-{tag}"
    assert match["data"]["child_birth_date"] == on_list["child"]["birth_date"]
    assert "Dana" not in str(match) and f"Okafor{tag}" not in str(match)
    everything = hotline.http.get("/v1/subscriptions/cw-birth-matches/events",
                                  params={"limit": 1000}).json()["events"]
    assert off_list["event_id"] not in str(everything)
