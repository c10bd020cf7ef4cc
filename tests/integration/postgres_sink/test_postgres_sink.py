"""The PostgreSQL sink against a real PostgreSQL 15 server: a subscription's permitted
views upserted into a table, idempotent by event_id, across crashes."""

from __future__ import annotations

import psycopg
import pytest

from broker.testing import ConnectorHarness
from connectors.postgres_sink import view_columns
from tests.demo_broker import demo_birth
from tests.postgres_server import postgres_database, postgres_server  # noqa: F401

SUB = "hv-births"


def births(n: int) -> list[dict]:
    return [demo_birth() for _ in range(n)]


def sink_config(dsn: str, **extra) -> dict:
    return {"type": "postgres_sink", "name": "nfp-warehouse", "subscription": SUB,
            "dsn": dsn, "table": "handoff_births", **extra}


def rows(dsn: str, sql: str = "SELECT * FROM handoff_births ORDER BY received_at, event_id"
         ) -> list[dict]:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(sql)
        names = [d.name for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_views_are_upserted_with_only_the_permitted_fields(tmp_path, postgres_database):  # noqa: F811
    events = births(3)
    with ConnectorHarness(tmp_path / "data") as harness:
        harness.publish("county-general", "birth", *events)
        harness.route()
        sink = harness.connector(sink_config(postgres_database))
        sink.start()
        sink.run_until_idle()
        stored = rows(postgres_database)
    assert sorted(r["event_id"] for r in stored) == sorted(e["event_id"] for e in events)
    event = events[0]
    (first,) = [r for r in stored if r["event_id"] == event["event_id"]]
    assert first["mother_first_name"] == event["mother"]["first_name"]
    assert first["mother_phone"] == event["mother"]["phone"]
    assert str(first["child_birth_date"]) == event["child"]["birth_date"]
    assert first["mother_street_address"] == event["mother"]["street_address"]
    for path in first["withheld"]:       # e.g. health facts without consent: null
        assert first.get(path.replace(".", "_")) is None
    assert first["event_type"] == "birth" and first["source"] == "county-general"
    assert first["decision_id"]
    # The SSN is withheld from home visiting: listed, and no column ever holds it.
    assert "mother.ssn" in first["withheld"]
    assert all(event["mother"]["ssn"] not in map(str, r.values()) for r in stored)


def test_a_crash_before_the_position_is_saved_rewrites_rows_instead_of_adding_them(
        tmp_path, postgres_database):  # noqa: F811
    with ConnectorHarness(tmp_path / "data") as harness:
        harness.publish("county-general", "birth", *births(2))
        harness.route()
        sink = harness.connector(sink_config(postgres_database))
        sink.start()
        # Written, then the process dies before the position after them is saved.
        sink.instance.put(harness.deliveries(SUB))
        first_pass = rows(postgres_database)
        sink.crash()
        sink.start()                                      # a new instance, same position
        sink.run_until_idle()
        harness.publish("county-general", "birth", *births(1))
        harness.route()
        sink.run_until_idle()
        after = rows(postgres_database)
    assert len(first_pass) == 2 and len(after) == 3
    kept = {r["event_id"]: r["received_at"] for r in after}
    assert all(kept[r["event_id"]] == r["received_at"] for r in first_pass)


def test_an_existing_table_is_used_and_a_missing_column_is_named(tmp_path, postgres_database):  # noqa: F811
    with psycopg.connect(postgres_database) as conn:
        conn.execute("CREATE TABLE handoff_births (event_id text PRIMARY KEY, "
                     "decision_id text, event_type text, source text, "
                     "received_at timestamptz DEFAULT now(), withheld jsonb)")
    with ConnectorHarness(tmp_path / "data") as harness:
        harness.publish("county-general", "birth", *births(1))
        harness.route()
        sink = harness.connector(sink_config(postgres_database, create_table=False))
        sink.start()
        with pytest.raises(Exception, match="lacks column"):
            sink.step()


def test_view_schemas_flatten_to_snake_columns():
    schema = {"type": "record", "name": "V", "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "mother", "type": ["null", {"type": "record", "name": "M", "fields": [
            {"name": "first_name", "type": ["null", "string"]},
            {"name": "birth_date", "type": ["null", {"type": "int", "logicalType": "date"}]},
        ]}]},
        {"name": "siblings", "type": {"type": "array", "items": "string"}},
        {"name": "sex", "type": {"type": "enum", "name": "Sex", "symbols": ["F", "M"]}},
        {"name": "sex_at_intake", "type": ["null", "Sex"]},
    ]}
    assert [(c.name, c.sql_type) for c in view_columns(schema)] == [
        ("view_event_id", "text"), ("occurred_at", "timestamptz"),
        ("mother_first_name", "text"), ("mother_birth_date", "date"),
        ("siblings", "jsonb"), ("sex", "text"), ("sex_at_intake", "text"),
    ]
