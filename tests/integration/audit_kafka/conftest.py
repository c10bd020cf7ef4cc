"""Fixtures for the audit log on Kafka: the session's Tansu broker, event logs under a
prefix of the test's own, and audit entries shaped like the router's decisions."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.audit import AuditEntry, CheckpointSigner, SubjectPseudonymizer
from broker.audit.kafka_records import AUDIT_TOPIC, CHECKPOINTS_TOPIC, TAILS_TOPIC
from broker.audit.kafka_store import AUDIT_TOPICS, KafkaAuditStore
from broker.log.kafka import KafkaEventLog
from broker.log.port import LogRecord, NewRecord
from tests.kafka_broker import TansuBroker, kafka_broker  # noqa: F401  (session fixture)

PSEUDONYMS = SubjectPseudonymizer(bytes(range(32)))


def _field(path: str, status: str, reason: str) -> dict[str, object]:
    return {"path": path, "status": status, "transform": None, "reason": reason,
            "rule_ids": [], "agreement_id": "cg-hv-births"}


# Shaped like policy's Decision.to_dict(): long enough for its end to be shared.
BIRTH_DECISION = {
    "agreement_id": "cg-hv-births",
    "bundle_version": "sha256:0123456789abcdef",
    "consent_ids": ["consent-17"],
    "event_type": "birth",
    "fields": [_field(f"mother.field_{n}", "released" if n % 3 else "withheld",
                      "permitted by agreement" if n % 3 else "not in agreement")
               for n in range(12)],
    "legal_basis": ["45 CFR 164.506(c)(4)"],
    "outcome": "permit",
    "purpose": "care_coordination",
    "released": [f"mother.field_{n}" for n in range(12) if n % 3],
    "withheld": [f"mother.field_{n}" for n in range(12) if not n % 3],
}


def decision(n: int, subject_id: str = "MPI-0048213", **overrides: object) -> AuditEntry:
    """A decision entry about `subject_id`; keyword arguments override attributes."""
    attributes: dict[str, object] = {
        "kind": "decision", "at_ms": 1_717_243_200_000 + n * 1000,
        "subject": PSEUDONYMS.pseudonym(subject_id), "recipient": "hv-nfp",
        "source": "county-general", "agreement": "cg-hv-births", "subscription": "hv-births",
        "outcome": "permit", "event_id": f"ev-{n}", "decision_id": f"{n:032x}",
        "actor": "router", "detail": BIRTH_DECISION,
    }
    attributes.update(overrides)
    return AuditEntry(**attributes)  # type: ignore[arg-type]


class KafkaSpace:
    """One test's corner of the shared broker: a topic prefix, and logs and audit stores
    opened under it (each like another process), closed after the test."""

    def __init__(self, broker: TansuBroker, tmp_path: Path) -> None:
        self.broker = broker
        self.prefix = f"t{uuid.uuid4().hex[:10]}."
        self.tmp_path = tmp_path
        self._logs: list[KafkaEventLog] = []
        self._stores: list[KafkaAuditStore] = []

    def log(self, prefix: str | None = None) -> KafkaEventLog:
        opened = KafkaEventLog(self.broker.bootstrap_servers,
                               topic_prefix=self.prefix if prefix is None else prefix)
        self._logs.append(opened)
        return opened

    def store(self, writer: str = "router", index: str | None = None,
              prefix: str | None = None) -> KafkaAuditStore:
        """A store with its own log and index, as a separate process would have."""
        name = index or f"index-{uuid.uuid4().hex[:8]}.db"
        opened = KafkaAuditStore(self.log(prefix), self.tmp_path / name, writer=writer)
        self._stores.append(opened)
        return opened

    def close(self) -> None:
        for store in self._stores:
            store.close()
        for log in self._logs:
            log.close()


@pytest.fixture
def space(kafka_broker: TansuBroker, tmp_path: Path) -> Iterator[KafkaSpace]:  # noqa: F811
    opened = KafkaSpace(kafka_broker, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def signer() -> CheckpointSigner:
    return CheckpointSigner(Ed25519PrivateKey.generate())


def read_topic(log: KafkaEventLog, topic: str) -> list[LogRecord]:
    found: list[LogRecord] = []
    offset, end = 0, log.end_offset(topic, 0)
    while offset < end:
        page = log.read(topic, 0, offset, 1000)
        found.extend(page)
        offset = page[-1].offset + 1
    return found


AuditTransform = Callable[[list[LogRecord]], list[LogRecord]]


def copy_audit(space: KafkaSpace, source: KafkaEventLog, *, records: AuditTransform = list,
               checkpoints: AuditTransform = list, tails: AuditTransform = list
               ) -> KafkaEventLog:
    """Copy the audit topics under a new prefix, changed on the way as someone with write
    access to the cluster could (Kafka records themselves cannot be edited); return a
    log on the copy."""
    target = space.log(f"t{uuid.uuid4().hex[:10]}.")
    for spec in AUDIT_TOPICS:
        target.ensure_topic(spec)
    for topic, change in ((TAILS_TOPIC, tails), (AUDIT_TOPIC, records),
                          (CHECKPOINTS_TOPIC, checkpoints)):
        copied = change(read_topic(source, topic))
        if copied:
            target.append(topic, [NewRecord(value=r.value, key=r.key, headers=r.headers)
                                  for r in copied])
    return target
