"""ISO 8601 dates held as strings: how a schema tags them, the check at publish (JSON and
Avro), and generalising them to the month or year."""

from __future__ import annotations

from typing import Any

import pytest

from policy import Transform
from policy.transforms import applicable, value_transform
from schemas.catalog import build_event_schema
from schemas.datestrings import date_string_problems
from schemas.errors import RecordValidationError, SchemaError
from schemas.jsonform import record_from_json, record_to_json

ENVELOPE = [
    {"name": "event_id", "type": "string"},
    {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "subject_id", "type": "string", "tags": ["identifier.direct"]},
]


def schema_with(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "StateFeed", "namespace": "org.example.state",
            "fields": [*ENVELOPE, *fields]}


SCHEMA = schema_with(
    {"name": "admitted", "type": {"type": "string", "logicalType": "date"},
     "tags": ["identifier.quasi"]},
    {"name": "discharged", "type": ["null", "string"], "format": "date", "default": None},
    {"name": "follow_up", "type": ["null", {"type": "string", "format": "date"}],
     "default": None},
    {"name": "note", "type": "string"},
)
EVENT = build_event_schema("state_feed", SCHEMA)


def event(**values: Any) -> dict[str, Any]:
    return {"event_id": "e-1", "occurred_at": 0, "subject_id": "MPI-1",
            "admitted": "2026-03-04", "discharged": None, "follow_up": None,
            "note": "free text", **values}


@pytest.mark.parametrize(("path", "is_date"), [
    ("admitted", True),     # {"type": "string", "logicalType": "date"}
    ("discharged", True),   # "format": "date" on the field
    ("follow_up", True),    # "format": "date" on the type
    ("note", False),
])
def test_a_string_field_is_a_date_by_logical_type_or_format(path: str, is_date: bool) -> None:
    info = EVENT.field(path)
    assert info.base_type == "string"
    assert (info.logical_type == "date") is is_date


def test_a_date_format_on_a_field_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(SchemaError, match="a date format applies to string fields"):
        build_event_schema("bad", schema_with({"name": "d", "type": "int", "format": "date"}))


@pytest.mark.parametrize(("values", "bad"), [
    ({}, set()),
    ({"discharged": "2026-03-10", "follow_up": "2026-04-01"}, set()),
    ({"admitted": "2024-02-29"}, set()),                      # a leap day
    ({"admitted": "2023-02-29"}, {"admitted"}),               # not a day of that year
    ({"admitted": "03/04/2026"}, {"admitted"}),
    ({"admitted": "2026-3-4"}, {"admitted"}),
    ({"admitted": "20260304"}, {"admitted"}),
    ({"admitted": "2026-03-04T10:00:00Z"}, {"admitted"}),
    ({"discharged": "soon", "follow_up": "2026-13-01"}, {"discharged", "follow_up"}),
    ({"note": "not a date, and not tagged as one"}, set()),
])
def test_json_publish_accepts_only_iso_dates_and_names_the_field(
        values: dict[str, Any], bad: set[str]) -> None:
    document = event(**values)
    if not bad:
        record = record_from_json(SCHEMA, document)
        assert record_to_json(SCHEMA, record)["admitted"] == document["admitted"]
        return
    with pytest.raises(RecordValidationError) as raised:
        record_from_json(SCHEMA, document)
    assert {path for path, _ in raised.value.problems} == bad
    assert all("YYYY-MM-DD" in message for _, message in raised.value.problems)
    for value in values.values():
        assert value not in str(raised.value)


@pytest.mark.parametrize(("values", "bad"), [
    ({}, []),
    ({"admitted": "4 March 2026"}, ["admitted"]),
    ({"discharged": "2026-02-30", "follow_up": "2026-02-28"}, ["discharged"]),
])
def test_avro_publish_check_names_every_field_that_is_not_an_iso_date(
        values: dict[str, Any], bad: list[str]) -> None:
    # An Avro payload decodes to plain strings; the publisher checks them with this.
    problems = date_string_problems(EVENT, event(**values))
    assert [path for path, _ in problems] == bad


@pytest.mark.parametrize(("spec", "value", "expected"), [
    ({"generalise": "month"}, "2026-03-04", "2026-03"),
    ({"generalise": "year"}, "2026-03-04", "2026"),
    ({"generalise": "month"}, None, None),
    ({"generalise": "year"}, "not a date", None),   # withheld, never passed on
])
def test_date_strings_generalise_to_month_or_year(spec: Any, value: str | None,
                                                  expected: str | None) -> None:
    assert value_transform(Transform.model_validate(spec), b"k" * 32)(value) == expected


@pytest.mark.parametrize(("spec", "path", "ok"), [
    ({"generalise": "month"}, "admitted", True),
    ({"generalise": "year"}, "discharged", True),
    ({"generalise": "month"}, "note", False),
    ("zip3", "admitted", False),
    ("mask", "admitted", False),
])
def test_which_transforms_a_date_string_takes(spec: Any, path: str, ok: bool) -> None:
    assert applicable(Transform.model_validate(spec), EVENT.field(path)) is ok
