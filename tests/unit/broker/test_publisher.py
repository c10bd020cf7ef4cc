"""The publisher with in-memory fakes: who may publish what (one decision, one audit
record and one metric whatever the channel), all-or-none validation, and what lands in
the log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.audit import SubjectPseudonymizer
from broker.auditor import Auditor
from broker.auth import Principal, Role
from broker.connect.source_batch import SourceBatchPublisher, connector_principal
from broker.consent_feed import ConsentFeed
from broker.consent_recording import ConsentRecording, ConsentRefusedError
from broker.event_types import EventTypes
from broker.ingest.group_commit import GroupCommitter
from broker.ingest.publisher import NotPermittedToPublishError, Publisher, UnknownEventTypeError
from broker.metrics import Metrics
from broker.policy_holder import PolicyHolder
from broker.topics import H_INGEST_KEY_ID, H_INGEST_SOURCE, ingress_topic
from broker.view_schemas import ViewSchemaRegistrar
from connectors.base import SourceConfig, SourceRecord
from connectors.dead_letters import DeadLetter
from schemas.catalog import SchemaCatalog
from schemas.errors import RecordValidationError
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore
from schemas.wire import WireCodec, encode_wire
from tests.unit.broker.fakes import MemoryAuditStore, MemoryEventLog, MemoryIdempotencyIndex

REPO = Path(__file__).resolve().parents[3]
BIRTH = json.loads((REPO / "schemas" / "events" / "birth.example.json").read_text())
CONSENT = json.loads((REPO / "schemas" / "events" / "consent.example.json").read_text())
KEY = b"k" * 32
HOSPITAL = Principal("cgh-ehr", "county-general", frozenset({Role.PUBLISH}))
PROGRAM = Principal("nfp-app", "hv-nfp", frozenset({Role.PUBLISH}))


@dataclass
class Publishing:
    publisher: Publisher
    log: MemoryEventLog
    audit: MemoryAuditStore
    metrics: Metrics
    codec: WireCodec

    def refused(self, reason: str) -> float:
        return self.metrics.publish_refused.labels(reason)._value.get()


@pytest.fixture
def p() -> Iterator[Publishing]:
    log = MemoryEventLog()
    registry = SchemaRegistry(InMemoryRegistryStore())
    event_types = EventTypes(registry, SchemaCatalog.load())
    codec = WireCodec(registry)
    audit, metrics = MemoryAuditStore(), Metrics()
    auditor = Auditor(audit, SubjectPseudonymizer(KEY), metrics)
    policy = PolicyHolder(REPO / "examples" / "demo" / "policy", event_types.catalog, KEY,
                          ViewSchemaRegistrar(registry))
    committer = GroupCommitter(log, MemoryIdempotencyIndex())
    consents = ConsentRecording(ConsentFeed(log, codec), auditor)
    yield Publishing(Publisher(event_types, codec, committer, auditor, metrics, policy,
                               consents),
                     log, audit, metrics, codec)
    committer.close()


def birth(subject_id: str = "MPI-1", **changes: Any) -> dict[str, Any]:
    return {**BIRTH, "event_id": f"evt-{subject_id}", "subject_id": subject_id, **changes}


def test_an_event_is_appended_keyed_by_pseudonym_with_its_source(p) -> None:
    (placed,) = p.publisher.publish_json(HOSPITAL, "birth", [birth("MPI-1")])
    assert placed.topic == ingress_topic("birth") and not placed.duplicate
    (record,) = p.log.records("events.birth")
    assert record.key is not None and record.key.startswith(b"sp_")
    assert b"MPI-1" not in record.key
    assert record.header(H_INGEST_SOURCE) == b"county-general"
    assert record.header(H_INGEST_KEY_ID) == b"cgh-ehr"
    assert p.codec.decode(record.value)[1]["subject_id"] == "MPI-1"
    assert p.metrics.events_ingested.labels("birth", "county-general")._value.get() == 1


def test_what_lands_in_the_log_is_fastavros_encoding_of_the_event(p) -> None:
    # Published events are written by the compiled writer; the log holds the same bytes
    # fastavro writes.
    accented = birth("MPI-2", mother={**BIRTH["mother"], "first_name": "Zoë Ōtsuka"})
    p.publisher.publish_json(HOSPITAL, "birth", [birth("MPI-1"), accented])
    records = p.log.records("events.birth")
    assert len(records) == 2
    for record in records:
        schema_id, decoded = p.codec.decode(record.value)
        assert record.value == encode_wire(p.codec._schema(schema_id), schema_id, decoded)


def test_a_resent_event_is_a_duplicate_and_not_counted_twice(p) -> None:
    p.publisher.publish_json(HOSPITAL, "birth", [birth("MPI-1")])
    (again,) = p.publisher.publish_json(HOSPITAL, "birth", [birth("MPI-1")])
    assert again.duplicate
    assert len(p.log.records("events.birth")) == 1
    assert p.metrics.events_ingested.labels("birth", "county-general")._value.get() == 1


def test_one_invalid_event_refuses_the_whole_batch_naming_its_field(p) -> None:
    with pytest.raises(RecordValidationError) as raised:
        p.publisher.publish_json(HOSPITAL, "birth",
                                 [birth("MPI-1"), birth("MPI-2", county_fips=7)])
    assert [path for path, _ in raised.value.problems] == ["events[1].county_fips"]
    assert p.log.records("events.birth") == []
    (entry,) = p.audit.of_kind("publish_refused")
    assert dict(entry.detail) == {"event_type": "birth", "reason": "invalid",
                                  "fields": ["events[1].county_fips"]}
    assert p.refused("invalid") == 1


def test_an_unknown_event_type_is_not_an_audited_refusal(p) -> None:
    with pytest.raises(UnknownEventTypeError):
        p.publisher.authorize(HOSPITAL, "parking_ticket")
    assert p.audit.entries == []


def test_every_channel_is_refused_by_the_publisher_with_one_record_and_one_metric(
        p) -> None:
    """The HTTP route, a connector's batch and the FHIR endpoint ask the same question
    of the publisher and get the same record: `publish_refused`, reason `not_permitted`.
    """
    # The HTTP route: authorize before the body is read.
    with pytest.raises(NotPermittedToPublishError, match="may not publish 'birth'"):
        p.publisher.authorize(PROGRAM, "birth")
    # A connector's batch: the record is dead-lettered with the publisher's reason.
    letters: list[DeadLetter] = []

    class Letters:
        def append(self, batch: list[DeadLetter]) -> None:
            letters.extend(batch)

    config = SourceConfig(name="nfp-export", type="test", agency="hv-nfp")
    outcomes = SourceBatchPublisher(p.publisher, config, Letters()).publish(  # type: ignore[arg-type]
        [SourceRecord("birth", birth("MPI-2"), {"n": 1})])
    assert [o.outcome for o in outcomes] == ["dead_letter"]
    assert letters[0].problems == (("<event_type>", "agency 'hv-nfp' may not publish "
                                                    "'birth' events"),)
    # A push source (FHIR): all or none through the ingest bound to the caller.
    with pytest.raises(NotPermittedToPublishError):
        p.publisher.ingest_as(PROGRAM).publish_all([("enrollment", []), ("birth", [birth()])])

    refusals = p.audit.of_kind("publish_refused")
    assert [(e.actor, e.source, e.detail["reason"], e.detail["event_type"])
            for e in refusals] == [
        ("nfp-app", "hv-nfp", "not_permitted", "birth"),
        (connector_principal(config).key_id, "hv-nfp", "not_permitted", "birth"),
        ("nfp-app", "hv-nfp", "not_permitted", "birth"),
    ]
    assert p.audit.of_kind("access_refused") == []
    assert p.refused("not_permitted") == 3
    assert p.log.records("events.birth") == [] and p.log.records("events.enrollment") == []


def test_publish_all_validates_every_group_before_committing_any(p) -> None:
    hotline = Principal("dcf-app", "cw-hotline", frozenset({Role.PUBLISH}))
    referral = json.loads((REPO / "schemas" / "events" / "referral.example.json")
                          .read_text())
    with pytest.raises(RecordValidationError):
        p.publisher.ingest_as(hotline).publish_all([
            ("referral", [referral]), ("referral", [{**referral, "event_id": "x",
                                                     "urgency": "SOMEDAY"}])])
    assert p.log.records("events.referral") == []
    placed = p.publisher.ingest_as(hotline).publish_all([("referral", [referral])])
    assert [[a.duplicate for a in group] for group in placed] == [[False]]


# -- consents: who may record or revoke one, decided by the publisher ----------------------


def consent(consent_id: str, action: str = "GRANT", **changes: Any) -> dict[str, Any]:
    return {**CONSENT, "event_id": f"evt-{consent_id}-{action}", "consent_id": consent_id,
            "action": action, **changes}


def test_a_consent_naming_a_discloser_its_recorder_may_not_name_is_refused_whole(p) -> None:
    # hv-nfp may record consents naming county-general (records_for), not medicaid.
    with pytest.raises(ConsentRefusedError) as raised:
        p.publisher.publish_json(PROGRAM, "consent", [
            consent("C-OK", disclosers=["county-general"]),
            consent("C-NO", disclosers=["medicaid"])])
    assert [path for path, _ in raised.value.problems] == ["events[1].disclosers"]
    assert p.log.records("events.consent") == []
    (entry,) = p.audit.of_kind("consent_change")
    assert (entry.outcome, entry.source, entry.event_id, entry.detail["code"]) == (
        "refused", "hv-nfp", "evt-C-NO-GRANT", "discloser_not_permitted")
    assert p.refused("consent_refused") == 1


def test_a_consent_from_a_connector_batch_is_audited_once_durable(p) -> None:
    """A connector's batch merges its events into one request: the consent changes
    travel with it and are audited when it is durable."""
    letters: list[DeadLetter] = []

    class Letters:
        def append(self, batch: list[DeadLetter]) -> None:
            letters.extend(batch)

    config = SourceConfig(name="nfp-consents", type="test", agency="hv-nfp")
    outcomes = SourceBatchPublisher(p.publisher, config, Letters()).publish(  # type: ignore[arg-type]
        [SourceRecord("consent", consent("C-1"), {"n": 1}),
         SourceRecord("consent", consent("C-1", "REVOKE"), {"n": 2}),
         SourceRecord("consent", consent("C-2", disclosers=["medicaid"]), {"n": 3})])
    assert [o.outcome for o in outcomes] == ["published", "published", "dead_letter"]
    assert letters[0].problems[0][0] == "disclosers"
    assert len(p.log.records("events.consent")) == 2
    assert [(e.outcome, e.actor, e.detail["recorded_by"])
            for e in p.audit.of_kind("consent_change")] == [
        ("refused", connector_principal(config).key_id, "hv-nfp"),
        ("granted", connector_principal(config).key_id, "hv-nfp"),
        ("revoked", connector_principal(config).key_id, "hv-nfp")]


def test_a_revocation_of_another_agencys_consent_is_refused(p) -> None:
    p.publisher.publish_json(HOSPITAL, "consent", [consent("C-1", disclosers=[])])
    with pytest.raises(ConsentRefusedError):
        p.publisher.publish_json(PROGRAM, "consent", [consent("C-1", "REVOKE")])
    assert [e.outcome for e in p.audit.of_kind("consent_change")] == ["granted", "refused"]
    assert len(p.log.records("events.consent")) == 1
