"""What the connector contract suite needs to know about each connector type: how to give
a source records in its own system, or how to see what a sink wrote to its own.

`tests/contract/test_connectors.py` runs every type in `connectors.registry.BUILTINS`
through the same lifecycle tests, using the kit registered here under that type. A new
built-in connector needs a kit: a `SourceKit` or `SinkKit` subclass added to `KITS`.
"""

from __future__ import annotations

import json
import uuid
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import pytest


def birth(subject_id: str, **changes: Any) -> dict[str, Any]:
    """A valid birth event (the schema's example) for `subject_id`, without an event id."""
    example = json.loads(files("schemas").joinpath("events/birth.example.json").read_text())
    example.pop("event_id")
    return {**example, "subject_id": subject_id, **changes}


class SourceKit:
    """Feeds a source connector through its own system. Records are births published as
    `county-general`; a subject id identifies each one."""

    kind: ClassVar[str] = "source"
    type: ClassVar[str]
    batch_size: ClassVar[int] = 3
    push: ClassVar[bool] = False
    slow: ClassVar[bool] = False
    """Whether the kit's system is a server the tests start (PostgreSQL): marks its
    tests `slow`, out of the fast lane."""
    """Records arrive by HTTP rather than through `poll` (there is nothing to replay
    from a position; the sender retries instead)."""
    harness: Any = None
    """The test's `ConnectorHarness`, set by the suite."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.tmp_path = tmp_path

    def config(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def add(self, subject_ids: list[str], bad: tuple[str, ...] = ()) -> None:
        """Put records into the source system; those in `bad` fail validation."""
        raise NotImplementedError


class FileDropKit(SourceKit):
    type = "file_drop"

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        super().__init__(request, tmp_path)
        self.folder = tmp_path / "drop"
        self.folder.mkdir()

    def config(self, name: str) -> dict[str, Any]:
        return {"type": self.type, "name": name, "agency": "county-general",
                "folder": str(self.folder), "min_age_seconds": 0,
                "batch_size": self.batch_size,
                "mapping": {"event_type": "birth", "passthrough": True}}

    def add(self, subject_ids: list[str], bad: tuple[str, ...] = ()) -> None:
        lines = [json.dumps(birth(s, hospital_id=None) if s in bad else birth(s))
                 for s in subject_ids]
        name = f"export-{uuid.uuid4().hex[:8]}.jsonl"
        temp = self.folder / f".{name}"
        temp.write_text("".join(line + "\n" for line in lines))
        temp.rename(self.folder / name)  # as an agency's export job should drop files


class PostgresOutboxKit(SourceKit):
    type = "postgres_outbox"
    slow = True

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        import psycopg

        super().__init__(request, tmp_path)
        self.dsn = request.getfixturevalue("postgres_database")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE handoff_outbox (id bigserial PRIMARY KEY, "
                         "event_type text NOT NULL, payload jsonb NOT NULL, "
                         "created_at timestamptz NOT NULL DEFAULT now())")

    def config(self, name: str) -> dict[str, Any]:
        return {"type": self.type, "name": name, "agency": "county-general",
                "dsn": self.dsn, "batch_size": self.batch_size}

    def add(self, subject_ids: list[str], bad: tuple[str, ...] = ()) -> None:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            for s in subject_ids:
                event = birth(s, hospital_id=None) if s in bad else birth(s)
                conn.execute("INSERT INTO handoff_outbox (event_type, payload) "
                             "VALUES ('birth', %s)", (json.dumps(event),))


class SinkKit:
    """Observes what a sink connector wrote to its own system. The sink serves the demo
    subscription `hv-births` (births from county-general for the home visiting program)."""

    kind: ClassVar[str] = "sink"
    type: ClassVar[str]
    subscription: ClassVar[str] = "hv-births"
    batch_size: ClassVar[int] = 3
    idempotent: ClassVar[bool] = True
    """Whether the sink promises one write per event id, however often it is put."""
    slow: ClassVar[bool] = False
    """As `SourceKit.slow`."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.tmp_path = tmp_path

    def config(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def written(self) -> list[str]:
        """The event id of every write in the destination, duplicates included."""
        raise NotImplementedError


class PostgresSinkKit(SinkKit):
    type = "postgres_sink"
    slow = True

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        super().__init__(request, tmp_path)
        self.dsn = request.getfixturevalue("postgres_database")

    def config(self, name: str) -> dict[str, Any]:
        return {"type": self.type, "name": name, "subscription": self.subscription,
                "dsn": self.dsn, "table": "births", "batch_size": self.batch_size}

    def written(self) -> list[str]:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            exists = conn.execute("SELECT to_regclass('births')").fetchone()
            if exists is None or exists[0] is None:
                return []
            return [r[0] for r in conn.execute("SELECT event_id FROM births").fetchall()]


class FhirKit(SourceKit):
    """A push source: records arrive as FHIR bundles posted to the broker, so "adding" a
    record is a hospital sending a bundle (through the same code the endpoint runs), and
    a replay is the hospital sending it again after a timeout."""

    type = "fhir_r4"
    push = True

    def config(self, name: str) -> dict[str, Any]:
        self.name = name
        return {"type": self.type, "name": name, "agency": "county-general",
                "county_fips": "55025"}

    def add(self, subject_ids: list[str], bad: tuple[str, ...] = ()) -> None:
        from broker.auth import Principal, Role
        from connectors.fhir_source import InvalidBundle, receive_bundle
        from connectors.registry import parse_config
        from tests.integration.fhir.bundles import birth_bundle

        config = parse_config(self.config(self.name))
        principal = Principal("test:county-general", "county-general",
                              frozenset({Role.PUBLISH}))
        for s in subject_ids:
            bundle = birth_bundle(bundle_id=f"bundle-{s}", mother_mpi=s)
            if s in bad:
                bundle["entry"] = bundle["entry"][:1]
            try:
                assert self.harness.broker.publisher is not None
                receive_bundle(self.harness.broker.publisher.ingest_as(principal),
                               config, json.dumps(bundle).encode())  # type: ignore[arg-type]
            except InvalidBundle:
                assert s in bad


KITS: dict[str, type[SourceKit] | type[SinkKit]] = {
    kit.type: kit for kit in (FileDropKit, PostgresOutboxKit, PostgresSinkKit, FhirKit)
}


def kit_params(connector_types: list[str]) -> list[Any]:
    """Connector types as test parameters, those whose kit starts a server marked slow."""
    return [pytest.param(t, marks=pytest.mark.slow) if getattr(KITS.get(t), "slow", False)
            else t for t in connector_types]
