"""The router, with in-memory fakes of the log and the audit store (no I/O beyond reading
the demo policy): what it audits, what it delivers, in which order, and what a policy
reload in the middle of routing does."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.audit import SubjectPseudonymizer
from broker.auditor import Auditor
from broker.consent_feed import ConsentFeed
from broker.delivery.envelope import delivery_headers
from broker.event_types import EventTypes
from broker.log.port import NewRecord, TopicSpec
from broker.metrics import Metrics
from broker.policy_holder import PolicyHolder
from broker.router import Router
from broker.topics import (
    H_INGEST_EVENT_ID,
    H_INGEST_KEY_ID,
    H_INGEST_SOURCE,
    QUARANTINE,
    ROUTER_GROUP,
    delivery_topic,
    ingress_topic,
)
from broker.view_schemas import ViewSchemaRegistrar
from schemas.catalog import SchemaCatalog
from schemas.jsonform import record_from_json
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore
from schemas.wire import WireCodec
from tests.unit.broker.fakes import (
    CommittingEventLog,
    Journal,
    LaterCommittingEventLog,
    MemoryAuditStore,
    MemoryEventLog,
)

REPO = Path(__file__).resolve().parents[3]
DEMO_POLICY = REPO / "examples" / "demo" / "policy"
CATALOG = SchemaCatalog.load()
BIRTH = json.loads((REPO / "schemas" / "events" / "birth.example.json").read_text())
KEY = b"k" * 32


@dataclass
class Routing:
    router: Router
    log: MemoryEventLog
    audit: MemoryAuditStore
    journal: Journal
    codec: WireCodec
    event_types: EventTypes
    metrics: Metrics

    def publish(self, *events: dict[str, Any], source: str = "county-general",
                event_type: str = "birth") -> None:
        registered = self.event_types.latest(event_type)
        self.log.append(ingress_topic(event_type), [
            NewRecord(value=self.codec.encode(registered.schema_id,
                                              record_from_json(registered.schema.schema, e)),
                      key=str(e["subject_id"]).encode(),
                      headers=((H_INGEST_SOURCE, source.encode()),
                               (H_INGEST_KEY_ID, b"cgh-ehr")))
            for e in events])

    def deliveries(self, subscription: str) -> list[dict[str, Any]]:
        return [self.codec.decode(r.value)[1]
                for r in self.log.records(delivery_topic(subscription))]


PolicyFactory = Callable[[SchemaCatalog, ViewSchemaRegistrar], PolicyHolder]


def demo_policy(catalog: SchemaCatalog, views: ViewSchemaRegistrar) -> PolicyHolder:
    return PolicyHolder(DEMO_POLICY, catalog, KEY, views)


def routing(make_policy: PolicyFactory = demo_policy, linger: float = 0.0,
            log_type: type[MemoryEventLog] = MemoryEventLog) -> Routing:
    journal = Journal()
    log = log_type(journal)
    registry = SchemaRegistry(InMemoryRegistryStore())
    event_types = EventTypes(registry, CATALOG)
    codec = WireCodec(registry)
    for name in event_types.names():
        log.ensure_topic(TopicSpec(ingress_topic(name), partitions=2))
    log.ensure_topic(TopicSpec(QUARANTINE))
    holder = make_policy(event_types.catalog, ViewSchemaRegistrar(registry))
    audit = MemoryAuditStore(journal)
    metrics = Metrics()
    auditor = Auditor(audit, SubjectPseudonymizer(KEY), metrics)
    router = Router(log, event_types, codec, holder, ConsentFeed(log, codec), auditor,
                    metrics, poll_timeout=0, linger=linger)
    return Routing(router, log, audit, journal, codec, event_types, metrics)


def birth(subject_id: str, **changes: Any) -> dict[str, Any]:
    return {**BIRTH, "event_id": f"evt-{subject_id}", "subject_id": subject_id, **changes}


def route_all(r: Routing) -> int:
    total = 0
    while routed := r.router.step():
        total += routed
    return total


# -- what one batch does ------------------------------------------------------------------


def test_each_decision_is_audited_and_permitted_views_are_delivered() -> None:
    r = routing()
    r.publish(birth("MPI-1"), birth("MPI-2"))
    assert route_all(r) == 2
    decisions = r.audit.of_kind("decision")
    # Two births from the hospital: the home visiting program and the evaluators.
    assert sorted(d.subscription or "" for d in decisions) == [
        "eval-births", "eval-births", "hv-births", "hv-births"]
    delivered = r.deliveries("hv-births")
    assert sorted(d["subject_id"] for d in delivered) == ["MPI-1", "MPI-2"]
    assert all("ssn" not in d["mother"] for d in delivered)
    # Every delivery carries the decision that released it.
    ids = {d.decision_id for d in decisions}
    assert {dict(rec.headers)["handoff.decision_id"].decode()
            for rec in r.log.records(delivery_topic("hv-births"))} <= ids


# A log that commits offsets in the transaction of the deliveries (AppendCommitting, the
# embedded log) and ones that cannot (Kafka, whose member commits in the background):
# the same order and replays either way.
LOGS = pytest.mark.parametrize(
    "log_type", [MemoryEventLog, CommittingEventLog, LaterCommittingEventLog],
    ids=["commit after append", "commit with append", "commit later after append"])


@LOGS
def test_decisions_are_audited_before_deliveries_and_offsets_are_committed_last(
        log_type: type[MemoryEventLog]) -> None:
    r = routing(log_type=log_type)
    r.publish(birth("MPI-1"), birth("MPI-2"), birth("MPI-3"))
    route_all(r)
    journal = r.journal
    first_delivery = journal.first("append", "deliver.")
    assert journal.last("audit", "decision") < first_delivery
    assert journal.last("append", "deliver.") < journal.first("commit", ROUTER_GROUP)
    assert journal.kinds("commit") == [ROUTER_GROUP]
    if isinstance(r.log, CommittingEventLog):
        assert r.log.joint_commits == 1  # the step's one transaction
    if isinstance(r.log, LaterCommittingEventLog):
        assert r.log.later_commits == 1  # handed over: the next poll does not wait


@LOGS
def test_nothing_is_committed_when_a_delivery_append_fails(
        log_type: type[MemoryEventLog]) -> None:
    r = routing(log_type=log_type)
    r.publish(birth("MPI-1"))
    r.log.fail_appends_to = "deliver."
    with pytest.raises(Exception, match="failed"):
        r.router.step()
    assert r.journal.kinds("commit") == []
    # Replayed after the failure: the same decisions again, then the commit.
    r.log.fail_appends_to = None
    r.router._drop_consumer()
    assert route_all(r) == 1
    ids = [d.decision_id for d in r.audit.of_kind("decision")]
    assert len(ids) == 4 and len(set(ids)) == 2
    assert r.journal.kinds("commit") == [ROUTER_GROUP]


def test_a_bad_record_is_quarantined_audited_and_skipped() -> None:
    r = routing()
    r.log.append(ingress_topic("birth"), [NewRecord(
        value=b"\x00\x00\x00\x00\x07not avro", key=b"x",
        headers=((H_INGEST_SOURCE, b"county-general"),))])
    r.publish(birth("MPI-2"))
    assert route_all(r) == 2
    (quarantined,) = r.log.records(QUARANTINE)
    assert quarantined.value == b"\x00\x00\x00\x00\x07not avro"
    assert dict(quarantined.headers)["handoff.quarantine_reason"].startswith(b"undecodable")
    (entry,) = r.audit.of_kind("record_quarantined")
    assert entry.outcome == "quarantined" and entry.detail["topic"] == "events.birth"
    # The good record behind it is routed; the bad one is committed past, not retried.
    assert [d["subject_id"] for d in r.deliveries("hv-births")] == ["MPI-2"]
    assert r.router.step() == 0
    assert r.metrics.quarantined.labels("birth")._value.get() == 1


def test_a_record_without_its_source_is_quarantined() -> None:
    r = routing()
    registered = r.event_types.latest("birth")
    value = r.codec.encode(registered.schema_id,
                           record_from_json(registered.schema.schema, birth("MPI-1")))
    r.log.append(ingress_topic("birth"), [NewRecord(value=value, key=b"MPI-1")])
    route_all(r)
    (entry,) = r.audit.of_kind("record_quarantined")
    assert "missing source" in entry.detail["reason"]
    assert r.audit.of_kind("decision") == []
    # Decoded, so its event id is read from the event itself.
    assert entry.event_id == "evt-MPI-1" and entry.detail["event_id"] == "recorded"


@pytest.mark.parametrize(("headers", "event_id"), [
    (((H_INGEST_SOURCE, b"county-general"), (H_INGEST_EVENT_ID, b"ev-41")), "ev-41"),
    (((H_INGEST_SOURCE, b"county-general"),), None),
], ids=["event id beside the value", "no event id anywhere"])
def test_a_quarantine_record_carries_the_event_id_when_it_can_be_read(
        headers: tuple[tuple[str, bytes], ...], event_id: str | None) -> None:
    r = routing()
    r.log.append(ingress_topic("birth"), [NewRecord(
        value=b"\x00\x00\x00\x00\x07not avro", key=b"x", headers=headers)])
    route_all(r)
    (entry,) = r.audit.of_kind("record_quarantined")
    assert entry.event_id == event_id
    assert entry.source == "county-general"
    assert entry.detail["event_id"] == ("recorded" if event_id else "unreadable")


def test_withheld_fields_are_counted_by_reason_code() -> None:
    r = routing()
    r.publish(birth("MPI-1"))
    route_all(r)

    def withheld(reason: str) -> float:
        return r.metrics.fields_withheld.labels("hv-births", reason)._value.get()

    # No consent on file: health facts wait for one; the SSN is outside the agreement.
    assert withheld("consent") >= 1
    assert withheld("agreement") >= 1
    decision = next(d for d in r.audit.of_kind("decision") if d.subscription == "hv-births")
    assert withheld("consent") + withheld("agreement") == len(dict(decision.detail)["withheld"])


def test_decisions_and_withheld_fields_are_counted_for_every_event_of_a_batch() -> None:
    """Counted once a batch per plan, the metrics still add up every decision."""
    r = routing()
    r.publish(*(birth(f"MPI-{n}") for n in range(3)))
    route_all(r)
    decisions = [d for d in r.audit.of_kind("decision") if d.subscription == "hv-births"]
    assert len(decisions) == 3
    assert r.metrics.decisions.labels("hv-births", "permit")._value.get() == 3
    withheld = sum(r.metrics.fields_withheld.labels("hv-births", reason)._value.get()
                   for reason in ("consent", "agreement"))
    assert withheld == sum(len(dict(d.detail)["withheld"]) for d in decisions)


def test_each_delivery_carries_its_own_envelope_beside_what_its_plan_shares() -> None:
    """Births sharing one compiled outcome share its withheld and obligations headers;
    the ids, the actor and the times are each delivery's own."""
    r = routing()
    r.publish(birth("MPI-1", occurred_at="2026-03-01T10:00:00Z"),
              birth("MPI-2", occurred_at="2026-03-02T11:30:00Z"))
    route_all(r)
    decisions = {d.decision_id: d for d in r.audit.of_kind("decision")}
    assert {d.actor for d in decisions.values()} == {"cgh-ehr"}
    ingress = {r.codec.decode(rec.value)[1]["event_id"]: rec
               for rec in r.log.records(ingress_topic("birth"))}
    seen = set()
    for subscription in ("hv-births", "eval-births"):
        for rec in r.log.records(delivery_topic(subscription)):
            headers = dict(rec.headers)
            decision = decisions[headers["handoff.decision_id"].decode()]
            detail = dict(decision.detail)
            event_id = headers["handoff.event_id"].decode()
            assert event_id == decision.event_id == detail["event_id"]
            occurred = {"evt-MPI-1": 1772359200000, "evt-MPI-2": 1772451000000}[event_id]
            assert rec.headers == delivery_headers(
                event_id, decision.decision_id or "", "birth", "county-general", occurred,
                ingress[event_id].timestamp_ms, json.dumps(detail["withheld"]).encode(),
                json.dumps(detail["obligations"]).encode())
            assert rec.key == (decision.subject or "").encode()
            seen.add((subscription, event_id))
    assert len(seen) == 4


# -- a reload in the middle of routing -----------------------------------------------------


class ReloadingAfterEveryRead(PolicyHolder):
    """A policy holder whose folder alternates between two bundles, reloaded right after
    every read of what it holds: the worst timing a concurrent reload can have."""

    WATCHED = frozenset({"bundle", "engine", "current"})

    def __init__(self, first: Path, second: Path, catalog: SchemaCatalog,
                 views: ViewSchemaRegistrar) -> None:
        self._folders = (first, second)
        self._flipping = True
        super().__init__(first, catalog, KEY, views)
        self._flipping = False

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name in ReloadingAfterEveryRead.WATCHED and not self._flipping:
            self._flip()
        return value

    def _flip(self) -> None:
        self._flipping = True
        try:
            first, second = self._folders
            self.directory = second if self.directory == first else first
            assert self.reload()
        finally:
            self._flipping = False


def narrower_policy(tmp_path: Path, drop: str) -> Path:
    """The demo policy with one field taken out of the hospital-to-home-visiting
    agreement."""
    target = tmp_path / "narrower"
    shutil.copytree(DEMO_POLICY, target)
    path = target / "agreements" / "county-general.yaml"
    doc = yaml.safe_load(path.read_text())
    (agreement,) = [a for a in doc["agreements"] if a["id"] == "cgh-hv-births"]
    agreement["fields"].remove(drop)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def _dig(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _released(r: Routing) -> Iterator[tuple[str, str, list[str]]]:
    for entry in r.audit.of_kind("decision"):
        detail = dict(entry.detail)
        if detail["outcome"] == "permit":
            yield entry.subscription or "", entry.decision_id or "", detail["released"]


def test_a_reload_in_the_middle_of_routing_never_drops_a_released_field(
        tmp_path: Path) -> None:
    """Every delivery holds each field its decision released, whatever bundle reloads
    happen while the batch is routed: a decision and the view schema its delivery is
    written with come from one policy version."""
    narrower = narrower_policy(tmp_path, "mother.phone")
    r = routing(lambda catalog, views: ReloadingAfterEveryRead(DEMO_POLICY, narrower,
                                                               catalog, views))
    r.publish(*(birth(f"MPI-{i}") for i in range(3)))
    for _ in range(3):  # batches under each version in turn
        route_all(r)
        r.publish(birth(f"MPI-later-{len(r.audit.entries)}"))
    by_decision = {dict(rec.headers)["handoff.decision_id"].decode(): r.codec.decode(
        rec.value)[1] for rec in r.log.records(delivery_topic("hv-births"))}
    missing = [(decision_id, path)
               for sub, decision_id, released in _released(r) if sub == "hv-births"
               for path in released
               if _dig(by_decision[decision_id], path) is None
               and _dig(BIRTH, path) is not None]
    assert {p for _, p in missing} == set(), "released fields missing from deliveries"
    assert len(by_decision) >= 4
    versions = {dict(e.detail)["bundle_version"] for e in r.audit.of_kind("decision")}
    assert len(versions) == 2, "batches were routed under both bundles"
