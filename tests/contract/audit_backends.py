"""Backends the audit-reader contract suite runs against, and the records it writes.

The fixture `audit_backend` yields an `AuditBackend` per backend. `backend.open()` opens an audit
store onto the test's log as another process would (its own connections; on Kafka its
own chain and index), so tests can write through one and read through another.

To add a backend: add its name to the fixture's params and an opener below.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from broker.audit import AuditEntry, AuditStore, SqliteAuditStore, SubjectPseudonymizer
from broker.audit.kafka_store import KafkaAuditStore
from broker.log.kafka import KafkaEventLog
from tests.kafka_broker import TansuBroker

PSEUDONYMS = SubjectPseudonymizer(bytes(range(32)))
START_MS = 1_717_243_200_000


def _field(path: str, status: str) -> dict[str, object]:
    return {"path": path, "status": status, "transform": None, "reason": "agreement",
            "rule_ids": [], "agreement_id": "cg-hv-births"}


# Shaped like policy's Decision.to_dict(), long enough for its end to be stored once.
BIRTH_DECISION = {
    "agreement_id": "cg-hv-births",
    "consent_ids": ["consent-17"],
    "event_type": "birth",
    "fields": [_field(f"mother.field_{n}", "released" if n % 3 else "withheld")
               for n in range(12)],
    "legal_basis": ["45 CFR 164.506(c)(4)"],
    "purpose": "care_coordination",
    "released": [f"mother.field_{n}" for n in range(12) if n % 3],
    "withheld": [f"mother.field_{n}" for n in range(12) if not n % 3],
}


def decision(n: int, subject_id: str = "MPI-0048213", **overrides: object) -> AuditEntry:
    """A decision about `subject_id` at START_MS + n s; keyword arguments override."""
    attributes: dict[str, object] = {
        "kind": "decision", "at_ms": START_MS + n * 1000,
        "subject": PSEUDONYMS.pseudonym(subject_id), "recipient": "hv-nfp",
        "source": "county-general", "agreement": "cg-hv-births", "subscription": "hv-births",
        "outcome": "permit", "event_id": f"ev-{n}", "decision_id": f"{n:032x}",
        "actor": "router", "detail": BIRTH_DECISION,
    }
    attributes.update(overrides)
    return AuditEntry(**attributes)  # type: ignore[arg-type]


@dataclass
class AuditBackend:
    """Opens audit stores onto one test's log and closes them after the test."""

    name: str
    opener: Callable[[int], AuditStore]
    opened: list[AuditStore] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def open(self) -> AuditStore:
        store = self.opener(len(self.opened))
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()
        for close in self.closers:
            close()


def _embedded(request: pytest.FixtureRequest, tmp_path: Path) -> AuditBackend:
    path = tmp_path / "data" / "audit.db"
    return AuditBackend("embedded", lambda _n: SqliteAuditStore(path))


def _kafka(request: pytest.FixtureRequest, tmp_path: Path) -> AuditBackend:
    # One broker serves the whole run; a prefix per test keeps each test's log apart.
    broker: TansuBroker = request.getfixturevalue("kafka_broker")
    prefix = f"audit-{uuid.uuid4().hex[:8]}."
    logs: list[KafkaEventLog] = []

    def open_store(n: int) -> AuditStore:
        logs.append(KafkaEventLog(broker.bootstrap_servers, topic_prefix=prefix))
        return KafkaAuditStore(logs[-1], tmp_path / f"index-{n}.db", writer=f"process-{n}")

    def close_logs() -> None:
        for event_log in logs:
            event_log.close()

    return AuditBackend("kafka", open_store, closers=[close_logs])


_BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], AuditBackend]] = {
    "embedded": _embedded,
    "kafka": _kafka,
}


@pytest.fixture(name="audit_backend", params=list(_BACKENDS))
def audit_backend_fixture(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[AuditBackend]:
    backend = _BACKENDS[request.param](request, tmp_path)
    yield backend
    backend.close_all()
