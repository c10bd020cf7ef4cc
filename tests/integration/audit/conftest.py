"""Fixtures for audit tests against a real SQLite audit store in a temporary directory."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.audit import AuditEntry, SqliteAuditStore, SubjectPseudonymizer
from broker.audit.paths import audit_db_path
from broker.audit.record_counts import FILL
from policy import PolicyEngine, load_bundle
from schemas.catalog import EventSchema, SchemaCatalog
from schemas.jsonform import record_from_json

RECOUNT = ("DELETE FROM audit_counts", FILL)
"""What a careful editor runs after removing records: daily counts that fit again."""

PSEUDONYM_KEY = bytes(range(32))

def _field(path: str, status: str, reason: str, *rules: str, transform: str | None = None
           ) -> dict[str, object]:
    return {"path": path, "status": status, "transform": transform, "reason": reason,
            "rule_ids": list(rules), "agreement_id": "cg-hv-births"}


# Shaped like policy's Decision.to_dict(): large enough to be stored compressed.
BIRTH_DECISION = {
    "agreement_id": "cg-hv-births",
    "bundle_version": "sha256:0123456789abcdef",
    "consent_ids": ["consent-17"],
    "deny_reason": None,
    "event_type": "birth",
    "fields": [
        _field("mother.given_name", "released", "permitted by agreement"),
        _field("mother.phone", "released", "permitted by agreement"),
        _field("mother.address.zip", "transformed", "agreement transform", transform="zip3"),
        _field("mother.ssn", "withheld", "not in agreement"),
        _field("child.birth_weight_grams", "withheld", "consent required",
               "hipaa.health-care-coordination"),
    ],
    "legal_basis": ["45 CFR 164.506(c)(4)"],
    "obligations": [],
    "outcome": "permit",
    "purpose": "care_coordination",
    "recipient": "hv-nfp",
    "released": ["mother.given_name", "mother.phone"],
    "schema_version": 1,
    "source": "county-general",
    "subscription_id": "hv-births",
    "transformed": ["mother.address.zip"],
    "withheld": ["mother.ssn", "child.birth_weight_grams"],
}


@pytest.fixture
def pseudonym_key() -> bytes:
    return PSEUDONYM_KEY


@pytest.fixture
def pseudonymizer(pseudonym_key: bytes) -> SubjectPseudonymizer:
    return SubjectPseudonymizer(pseudonym_key)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def store(data_dir: Path) -> Iterator[SqliteAuditStore]:
    opened = SqliteAuditStore(audit_db_path(data_dir))
    yield opened
    opened.close()


@pytest.fixture
def decision(pseudonymizer: SubjectPseudonymizer) -> Callable[..., AuditEntry]:
    """Build a decision entry for a raw subject id; keyword arguments override attributes."""

    def build(subject_id: str = "MPI-0048213", n: int = 0, **overrides: object) -> AuditEntry:
        attributes: dict[str, object] = {
            "kind": "decision", "at_ms": 1_717_243_200_000 + n * 1000,
            "subject": pseudonymizer.pseudonym(subject_id), "recipient": "hv-nfp",
            "source": "county-general", "agreement": "cg-hv-births",
            "subscription": "hv-births", "outcome": "permit", "event_id": f"ev-{n}",
            "decision_id": f"{n:032x}", "actor": "router", "detail": BIRTH_DECISION,
        }
        attributes.update(overrides)
        return AuditEntry(**attributes)  # type: ignore[arg-type]

    return build


@pytest.fixture
def filled(store: SqliteAuditStore, decision: Callable[..., AuditEntry]) -> SqliteAuditStore:
    """A store holding 40 decisions about four people."""
    store.append([decision(f"MPI-{n % 4}", n) for n in range(40)])
    return store


@pytest.fixture
def tamper(data_dir: Path) -> Callable[..., None]:
    """Run SQL directly on the audit database, as someone with file access could."""

    def run(*statements: str) -> None:
        conn = sqlite3.connect(audit_db_path(data_dir), isolation_level=None)
        try:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                        ).fetchall():
                conn.execute(f"DROP TRIGGER {name}")
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.close()

    return run


DEMO_POLICY = Path(__file__).resolve().parents[3] / "examples" / "demo" / "policy"


def demo_birth() -> tuple[PolicyEngine, EventSchema, dict[str, object]]:
    """The demo bundle's engine, the birth schema and its example record."""
    catalog = SchemaCatalog.load()
    engine = PolicyEngine(load_bundle(DEMO_POLICY, catalog), catalog, pseudonym_key=b"k" * 32)
    schema = catalog.get("birth")
    return engine, schema, record_from_json(schema.schema, schema.example)
