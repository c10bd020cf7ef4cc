"""The PostgreSQL source against a real PostgreSQL 15 server."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from broker.testing import ConnectorHarness
from connectors.errors import FatalConnectorError, RetriableConnectorError
from tests.contract.connector_kits import birth

OUTBOX = ("CREATE TABLE handoff_outbox (id bigserial PRIMARY KEY, event_type text NOT NULL, "
          "payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")


@pytest.fixture
def harness(tmp_path: Path):
    with ConnectorHarness(tmp_path / "data") as h:
        yield h


@pytest.fixture
def outbox(postgres_database: str) -> str:
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(OUTBOX)
    return postgres_database


def insert(conn: psycopg.Connection, *subjects: str, event_type: str = "birth") -> None:
    for s in subjects:
        conn.execute("INSERT INTO handoff_outbox (event_type, payload) VALUES (%s, %s)",
                     (event_type, json.dumps(birth(s))))


def subjects(harness: ConnectorHarness) -> list[str]:
    return sorted(e["subject_id"] for e in harness.events("birth"))


def source_config(dsn: str, **extra) -> dict:
    return {"type": "postgres_outbox", "name": "cms", "agency": "county-general",
            "dsn": dsn, **extra}


def test_a_row_committed_late_with_a_lower_id_is_not_skipped(outbox, harness):
    source = harness.connector(source_config(outbox))
    source.start()
    with psycopg.connect(outbox, autocommit=True) as conn:
        insert(conn, "MPI-1")
        late = psycopg.connect(outbox)  # holds id 2 in an open transaction
        insert(late, "MPI-2")
        insert(conn, "MPI-3")  # id 3, committed first
        source.run_until_idle()
        assert subjects(harness) == ["MPI-1"]
        assert source.offset == {"id": 1}
        late.commit()
        late.close()
        source.run_until_idle()
    assert subjects(harness) == ["MPI-1", "MPI-2", "MPI-3"]
    assert source.offset == {"id": 3}


def test_the_outbox_is_emptied_after_commit_when_asked(outbox, harness):
    with psycopg.connect(outbox, autocommit=True) as conn:
        insert(conn, "MPI-1", "MPI-2")
        source = harness.connector(source_config(outbox, delete_after_commit=True))
        source.start()
        source.run_until_idle()
        assert conn.execute("SELECT count(*) FROM handoff_outbox").fetchone() == (0,)
    assert subjects(harness) == ["MPI-1", "MPI-2"]


def test_rows_the_agency_may_not_publish_are_dead_lettered(outbox, harness):
    with psycopg.connect(outbox, autocommit=True) as conn:
        insert(conn, "MPI-1", event_type="referral")
        conn.execute("INSERT INTO handoff_outbox (event_type, payload) VALUES "
                     "('birth', '[1]'), ('nonsense', '{}')")
        insert(conn, "MPI-2")
    source = harness.connector(source_config(outbox))
    source.start()
    source.run_until_idle()
    assert subjects(harness) == ["MPI-2"]
    letters = {d.reference: d.problems for d in harness.dead_letters("cms")}
    assert letters == {
        "handoff_outbox id 1": (("<event_type>", "agency 'county-general' may not publish "
                                                 "'referral' events"),),
        "handoff_outbox id 2": (("payload", "expected a JSON object"),),
        "handoff_outbox id 3": (("<event_type>", "not a registered event type"),),
    }


def test_a_mapped_table_is_read_row_by_row(postgres_database, harness):
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE births (birth_id serial PRIMARY KEY, mrn text, "
                     "recorded timestamptz, dob date, sex char(1), weight numeric)")
        conn.execute("INSERT INTO births (mrn, recorded, dob, sex, weight) VALUES "
                     "('MPI-1', '2026-11-06 14:20+00', '2026-11-06', 'F', 2410), "
                     "('MPI-2', '2026-11-06 15:00+00', '2026-11-06', '?', 3100)")
    example = birth("x")
    mapping = {
        "event_type": "birth",
        "fields": {
            "subject_id": "mrn", "occurred_at": "recorded",
            "child.birth_date": "dob", "child.birth_weight_grams": "weight",
            "child.sex": {"from": "sex", "convert": [{"lookup": {"F": "FEMALE"}}]},
            **{f"child.{k}": {"const": v} for k, v in example["child"].items()
               if k not in ("birth_date", "birth_weight_grams", "sex")},
            **{f"mother.{k}": {"const": v} for k, v in example["mother"].items()},
            "hospital_id": {"const": "1467533928"}, "county_fips": {"const": "55025"},
        },
    }
    source = harness.connector(source_config(postgres_database, table="births",
                                             id_column="birth_id", mapping=mapping))
    source.start()
    source.run_until_idle()
    [event] = harness.events("birth")
    assert event["subject_id"] == "MPI-1" and event["child"]["birth_weight_grams"] == 2410
    assert event["occurred_at"] == "2026-11-06T14:20:00.000Z"
    [letter] = harness.dead_letters("cms")
    assert letter.reference == "births birth_id 2"
    assert letter.problems == (("child.sex", "value is not in the lookup table"),)


def test_a_missing_table_stops_the_connector_with_what_to_fix(postgres_database, harness):
    source = harness.connector(source_config(postgres_database, table="no_such_table"))
    with pytest.raises(FatalConnectorError, match="table no_such_table does not exist"):
        source.start()


def test_an_unreachable_server_is_worth_retrying(harness):
    source = harness.connector(source_config(
        "host=127.0.0.1 port=1 dbname=x user=x", connect_timeout_seconds=1))
    with pytest.raises(RetriableConnectorError, match="cannot reach PostgreSQL"):
        source.start()
