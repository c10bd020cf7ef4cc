"""The router with record linkage (in-memory log, audit store and person index): one
person across agencies' ids, consents by person, reviews that re-key what followed,
pseudonyms of persons, birth match that tells child welfare of matches only."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from typing import Any

from broker.audit import SubjectPseudonymizer
from broker.auditor import Auditor
from broker.consent_feed import ConsentFeed
from broker.event_types import EventTypes
from broker.linking.audit_entries import LINKAGE_KINDS, LinkageAuditor
from broker.linking.births import WatchListFeed
from broker.linking.linker import Linker
from broker.linking.service import LinkageService
from broker.linking.stage import LinkageStage
from broker.linking.terms import RecordRef, thresholds_of
from broker.log.port import NewRecord, TopicSpec
from broker.metrics import Metrics
from broker.policy_holder import PolicyHolder
from broker.router import Router
from broker.topics import H_INGEST_KEY_ID, H_INGEST_SOURCE, QUARANTINE, ingress_topic
from broker.view_schemas import ViewSchemaRegistrar
from linkage.default_model import default_model
from linkage.memory_index import MemoryPersonIndex
from linkage.resolver import PersonResolver
from schemas.jsonform import record_from_json
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore
from schemas.wire import WireCodec
from tests.unit.broker.fakes import MemoryAuditStore, MemoryEventLog
from tests.unit.broker.test_router import BIRTH, CATALOG, DEMO_POLICY, KEY

REFERRAL = json.loads((DEMO_POLICY.parents[2] / "schemas" / "events" /
                       "referral.example.json").read_text())
HEALTH = "child.birth_weight_grams"


@dataclass
class Linked:
    router: Router
    log: MemoryEventLog
    audit: MemoryAuditStore
    codec: WireCodec
    event_types: EventTypes
    index: MemoryPersonIndex
    service: LinkageService
    auditor: Auditor
    metrics: Metrics

    def publish(self, event_type: str, event: dict[str, Any], source: str) -> None:
        registered = self.event_types.latest(event_type)
        self.log.append(ingress_topic(event_type), [NewRecord(
            value=self.codec.encode(registered.schema_id,
                                    record_from_json(registered.schema.schema, event)),
            key=str(event["subject_id"]).encode(),
            headers=((H_INGEST_SOURCE, source.encode()), (H_INGEST_KEY_ID, b"key")))])

    def route(self) -> None:
        while self.router.step():
            pass

    def delivered(self, subscription: str) -> list[dict[str, Any]]:
        return [self.codec.decode(r.value)[1]
                for r in self.log.records(f"deliver.{subscription}")]

    def person(self, agency: str, agency_id: str) -> str | None:
        return self.service.person_of(agency, agency_id)


def linked_routing() -> Linked:
    log = MemoryEventLog()
    registry = SchemaRegistry(InMemoryRegistryStore())
    event_types = EventTypes(registry, CATALOG)
    codec = WireCodec(registry)
    for name in event_types.names():
        log.ensure_topic(TopicSpec(ingress_topic(name), partitions=2))
    log.ensure_topic(TopicSpec(QUARANTINE))
    holder = PolicyHolder(DEMO_POLICY, event_types.catalog, KEY, ViewSchemaRegistrar(registry))
    audit = MemoryAuditStore()
    metrics = Metrics()
    auditor = Auditor(audit, SubjectPseudonymizer(KEY), metrics)
    index = MemoryPersonIndex()
    terms = holder.current.bundle.linkage
    assert terms is not None
    resolver = PersonResolver(index, default_model(), thresholds_of(terms))
    linker = Linker(index, resolver, LinkageAuditor(auditor), metrics)
    stage = LinkageStage(linker, WatchListFeed(log, codec, default_model()), metrics)
    router = Router(log, event_types, codec, holder, ConsentFeed(log, codec), auditor,
                    metrics, poll_timeout=0, linkage=stage)
    service = LinkageService(index, auditor, audit, linker=linker)  # type: ignore[arg-type]
    return Linked(router, log, audit, codec, event_types, index, service, auditor, metrics)


def birth(subject_id: str, **mother: Any) -> dict[str, Any]:
    event = copy.deepcopy(BIRTH)
    event["event_id"] = str(uuid.uuid4())
    event["subject_id"] = subject_id
    event["mother"].update(mother)
    return event


def referral(subject_id: str, **caregiver: Any) -> dict[str, Any]:
    event = copy.deepcopy(REFERRAL)
    event["event_id"] = str(uuid.uuid4())
    event["subject_id"] = subject_id
    event["caregiver"].update(caregiver)
    return event


def consent(subject_id: str, disclosers: list[str]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": 1_700_000_000_000,
            "subject_id": subject_id, "consent_id": "HL-AUTH-7", "action": "GRANT",
            "grantor": {"name": "Jolene Lindqvist", "relationship": "SELF"},
            "recipients": ["hv-nfp"], "purposes": ["care_coordination"],
            "categories": ["health", "benefits", "sud"], "effective_at": 1_700_000_000_000,
            "expires_at": None, "form_reference": None, "disclosers": disclosers}


def watch_entry(entry_id: str, **parent: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": 1_700_000_000_000,
            "subject_id": "CW-P-1", "entry_id": entry_id, "action": "ADD",
            "reason": "PRIOR_TPR",
            "parent": {"first_name": "Jolene", "last_name": "Lindqvist",
                       "birth_date": "1995-05-16", "sex": "FEMALE",
                       "street_address": "418 Larkspur Court Apt 2", "zip": "53703",
                       "phone": "608-555-0142", **parent},
            "clk": None}


# The hotline knows Jolene by an intake id, the hospital by its MRN.
INTAKE, MRN = "HL-INTAKE-5501", "CGH-MRN-0048213"


def test_a_mother_known_by_mrn_and_by_intake_id_is_one_person() -> None:
    r = linked_routing()
    r.publish("referral", referral(INTAKE), "cw-hotline")
    r.publish("birth", birth(MRN), "county-general")
    r.route()
    person = r.person("county-general", MRN)
    assert person is not None and person == r.person("cw-hotline", INTAKE)
    # Both decisions are filed under the person's pseudonym, each naming its own record.
    decisions = r.audit.of_kind("decision")
    assert {d.subject for d in decisions} == {r.auditor.subject(person)}
    records = {d.detail["subject_record"] for d in decisions}
    assert records == {r.auditor.subject("cw-hotline|subject|" + INTAKE),
                       r.auditor.subject("county-general|subject|" + MRN)}
    # Linkage is audited with its evidence and never a value.
    (linked,) = [e for e in r.audit.of_kind("linkage_linked")
                 if e.detail["method"] == "exact_name_dob" or e.detail["method"]
                 == "probabilistic"]
    assert linked.detail["evidence"] and "Jolene" not in json.dumps(
        [dict(e.detail) for e in r.audit.entries if e.kind in LINKAGE_KINDS])


def test_her_hotline_consent_governs_the_hospitals_events() -> None:
    r = linked_routing()
    r.publish("referral", referral(INTAKE), "cw-hotline")
    r.route()
    r.publish("consent", consent(INTAKE, ["county-general"]), "cw-hotline")
    r.publish("birth", birth(MRN), "county-general")
    r.route()
    (delivered,) = r.delivered("hv-births")
    assert delivered["child"]["birth_weight_grams"] == BIRTH["child"]["birth_weight_grams"]
    decision = next(d for d in r.audit.of_kind("decision") if d.subscription == "hv-births")
    assert decision.detail["consent_ids"] == ["cw-hotline/HL-AUTH-7"]
    # The same consent recorded by an agency the hospital does not rely on opens nothing.
    other = linked_routing()
    other.publish("enrollment", {
        **json.loads((DEMO_POLICY.parents[2] / "schemas" / "events" /
                      "enrollment.example.json").read_text()), "subject_id": "RC-1"},
        "recovery-clinic")
    other.publish("consent", consent("RC-1", ["county-general"]), "recovery-clinic")
    other.publish("birth", birth(MRN), "county-general")
    other.route()
    assert other.delivered("hv-births")[0]["child"]["birth_weight_grams"] is None


def test_an_uncertain_pair_goes_to_review_and_its_resolution_rekeys_what_followed() -> None:
    r = linked_routing()
    r.publish("referral", referral(INTAKE), "cw-hotline")
    r.route()
    r.publish("consent", consent(INTAKE, ["county-general"]), "cw-hotline")
    # The hospital has her at another address in the same ZIP, with another phone.
    uncertain = dict(street_address="9 Elm St", phone="608-555-0999")
    r.publish("birth", birth(MRN, **uncertain), "county-general")
    r.route()
    (review,) = r.service.open_reviews()
    assert review.record == RecordRef("county-general", "subject", MRN)
    assert review.candidate_person_id == r.person("cw-hotline", INTAKE)
    assert all(e.field and e.level for e in review.evidence)
    provisional = r.person("county-general", MRN)
    assert provisional != review.candidate_person_id
    # While the review is open, the hotline's consent does not reach the hospital's record.
    assert r.delivered("hv-births")[-1]["child"]["birth_weight_grams"] is None
    change = r.service.resolve_review(review.review_id, "same", "steward-key")
    assert [k.record_key for k in change.rekeys] == [f"county-general|subject|{MRN}"]
    assert r.person("county-general", MRN) == review.candidate_person_id
    r.publish("birth", birth(MRN, **uncertain), "county-general")
    r.route()
    assert r.delivered("hv-births")[-1]["child"]["birth_weight_grams"] is not None
    resolved = r.audit.of_kind("linkage_review_resolved")
    assert [e.actor for e in resolved] == ["steward-key"]
    (merged,) = r.audit.of_kind("linkage_merged")
    assert merged.detail["rekeys"][0]["record"] == r.auditor.subject(
        f"county-general|subject|{MRN}")


def test_an_unlink_is_audited_and_reversible() -> None:
    r = linked_routing()
    r.publish("referral", referral(INTAKE), "cw-hotline")
    r.publish("birth", birth(MRN), "county-general")
    r.route()
    person = r.person("county-general", MRN)
    change = r.service.unlink(RecordRef("county-general", "subject", MRN), "steward-key",
                              "wrong_link")
    apart = r.person("county-general", MRN)
    assert apart != person and r.person("cw-hotline", INTAKE) == person
    (unlinked,) = r.audit.of_kind("linkage_unlinked")
    assert unlinked.actor == "steward-key" and unlinked.detail["reason"] == "wrong_link"
    assert unlinked.subject == r.auditor.subject(person)
    r.service.undo(change.seqs[0], "steward-key", "review_error")
    assert r.person("county-general", MRN) == person
    undone = [e for e in r.audit.of_kind("linkage_linked") if e.detail["method"] == "clerical"]
    assert len(undone) == 1 and undone[0].actor == "steward-key"


def test_a_pseudonymised_subject_is_one_pseudonym_per_person_across_records() -> None:
    r = linked_routing()
    r.publish("birth", birth(MRN), "county-general")
    r.route()
    r.publish("birth", birth(MRN), "county-general")
    r.route()
    first, second = r.delivered("eval-births")
    assert first["subject_id"] == second["subject_id"] != MRN
    assert MRN not in json.dumps(r.delivered("eval-births"), default=str)


def test_birth_match_tells_child_welfare_of_matches_only() -> None:
    r = linked_routing()
    r.publish("watch_list_entry", watch_entry("TPR-2023-0917"), "cw-hotline")
    # An entry another agency sends is not on child welfare's list.
    r.publish("watch_list_entry", watch_entry("FAKE-1", first_name="Maria",
                                              last_name="Delgado",
                                              birth_date="1999-02-03"), "hv-nfp")
    r.route()
    r.publish("birth", birth("VR-CERT-1"), "vital-records")
    other = birth("VR-CERT-2", first_name="Maria", last_name="Delgado",
                  birth_date=10625, street_address="1 Oak Ave", zip="53704",
                  phone="608-555-0163")
    r.publish("birth", other, "vital-records")
    r.route()
    (match,) = r.delivered("cw-birth-matches")
    assert match["entry_id"] == "TPR-2023-0917" and match["subject_id"] == "CW-P-1"
    assert match["parent_role"] == "MOTHER" and match["match_method"] == "IDENTITY"
    assert set(match) == {"event_id", "occurred_at", "subject_id", "entry_id", "reason",
                          "parent_role", "birth_event_id", "child_birth_date",
                          "hospital_id", "match_method", "match_score"}
    assert "Jolene" not in json.dumps(match, default=str)
    (audited,) = r.audit.of_kind("birth_match")
    assert audited.recipient == "cw-hotline" and audited.detail["evidence"]
    # The birth that matched nothing reached no one at child welfare.
    assert [d.event_id for d in r.audit.of_kind("decision")
            if d.recipient == "cw-hotline"] == [match["event_id"]]


def test_every_linked_event_is_counted_and_timed_in_the_metrics() -> None:
    """Counted once a batch, the resolutions and linking times still add up per event:
    a birth's mother and child are new persons, found again by agency id the second
    time; the hotline's referral links to the mother."""
    r = linked_routing()
    r.publish("birth", birth(MRN), "county-general")
    r.route()
    r.publish("birth", birth(MRN), "county-general")
    r.publish("referral", referral(INTAKE), "cw-hotline")
    r.route()
    resolutions = {(s.labels["event_type"], s.labels["outcome"]): s.value
                   for m in r.metrics.linkage_resolutions.collect() for s in m.samples
                   if s.name.endswith("_total")}
    assert resolutions == {("birth", "new_person"): 2, ("birth", "agency_id"): 2,
                           ("referral", "link"): 1}
    timed = [s.value for m in r.metrics.linkage_seconds.collect() for s in m.samples
             if s.name.endswith("_count")]
    assert timed == [3]
