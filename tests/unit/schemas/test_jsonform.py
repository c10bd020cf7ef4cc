"""JSON form of records: strict conversion in, faithful conversion out."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from schemas.catalog import SchemaCatalog
from schemas.errors import RecordValidationError, SchemaError
from schemas.jsonform import json_form, record_from_json, record_to_json

CATALOG = SchemaCatalog.load()
BIRTH = CATALOG.get("birth")
SECRET = "SECRET-1995-05-16x"


def round_trip(parsed: Any, record: dict[str, Any]) -> Any:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, parsed)


def problems_of(schema: Any, data: Any) -> list[tuple[str, str]]:
    with pytest.raises(RecordValidationError) as raised:
        record_from_json(schema, data)
    return raised.value.problems


def birth_example() -> dict[str, Any]:
    return copy.deepcopy(dict(BIRTH.example or {}))


@pytest.mark.parametrize("event_type", CATALOG.event_types())
def test_examples_load_and_survive_an_avro_round_trip(event_type: str) -> None:
    schema = CATALOG.get(event_type)
    record = record_from_json(schema.schema, schema.example)
    assert round_trip(schema.parsed, record) == record


@pytest.mark.parametrize("event_type", CATALOG.event_types())
def test_delivered_json_loads_back_to_the_same_record(event_type: str) -> None:
    schema = CATALOG.get(event_type)
    record = round_trip(schema.parsed, record_from_json(schema.schema, schema.example))
    delivered = json.loads(json.dumps(record_to_json(schema.schema, record)))
    assert record_from_json(schema.schema, delivered) == record


def test_dates_and_timestamps_are_delivered_as_iso_strings() -> None:
    record = record_from_json(BIRTH.schema, BIRTH.example)
    delivered = record_to_json(BIRTH.schema, record)
    assert delivered["occurred_at"] == "2026-11-07T14:20:00.000Z"
    assert delivered["child"]["birth_date"] == "2026-11-06"
    assert delivered["child"]["sex"] == "FEMALE"
    assert delivered["mother"]["ssn"] == "512-44-9031"


def test_dates_and_timestamps_load_from_iso_strings() -> None:
    data = birth_example()
    data["occurred_at"] = "2026-11-07T09:20:00.123456-05:00"
    data["child"]["birth_date"] = "2026-11-05"
    record = record_from_json(BIRTH.schema, data)
    # Converted to UTC and truncated to milliseconds, as a reader would see it.
    assert record["occurred_at"] == dt.datetime(2026, 11, 7, 14, 20, 0, 123000, tzinfo=dt.UTC)
    assert record["child"]["birth_date"] == dt.date(2026, 11, 5)
    assert round_trip(BIRTH.parsed, record) == record


def test_missing_fields_with_defaults_take_them_and_defaults_are_not_shared() -> None:
    consent = CATALOG.get("consent")
    data = dict(consent.example or {})
    for name in ("recipients", "purposes", "expires_at", "form_reference"):
        del data[name]
    first = record_from_json(consent.schema, data)
    assert (first["recipients"], first["expires_at"], first["form_reference"]) == ([], None, None)
    first["recipients"].append("someone")
    assert record_from_json(consent.schema, data)["recipients"] == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def change(data: dict[str, Any]) -> None:
        for part in parents:
            data = data[part]
        data[last] = value

    return change


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def change(data: dict[str, Any]) -> None:
        for part in parents:
            data = data[part]
        del data[last]

    return change


# (rule, change to the birth example, expected (path, message))
BIRTH_RULES: list[tuple[str, Callable[[dict[str, Any]], None], tuple[str, str]]] = [
    # An unknown key is named by its position, never its text (a key may be an SSN).
    ("unknown field", _set("mother.nickname", SECRET), (
        "mother.<key 13>", "unknown field (key 13 of this object; its name is not repeated)")),
    ("required field missing", _delete("hospital_id"), ("hospital_id", "required field missing")),
    (
        "nested record must be an object",
        _set("mother", SECRET),
        ("mother", "expected a JSON object"),
    ),
    (
        "null only where the union admits it",
        _set("child.last_name", None),
        ("child.last_name", "null is not allowed here"),
    ),
    ("string must be a string", _set("mother.ssn", 512449031), ("mother.ssn", "expected a string")),
    (
        "int is 32-bit",
        _set("child.birth_weight_grams", 2**31),
        ("child.birth_weight_grams", "integer outside the 32-bit range"),
    ),
    (
        "booleans are not ints",
        _set("child.birth_weight_grams", True),
        ("child.birth_weight_grams", "expected an integer"),
    ),
    (
        "fractions are not ints",
        _set("child.birth_weight_grams", 2410.5),
        ("child.birth_weight_grams", "expected an integer"),
    ),
    (
        "ints are not booleans",
        _set("child.nicu_admission", 1),
        ("child.nicu_admission", "expected true or false"),
    ),
    (
        "enum must be a symbol",
        _set("child.sex", SECRET),
        ("child.sex", "expected one of: FEMALE, MALE, UNDETERMINED"),
    ),
    (
        "nullable union checks the inner type",
        _set("mother.prenatal_visits", "7"),
        ("mother.prenatal_visits", "expected an integer"),
    ),
    (
        "date must be YYYY-MM-DD",
        _set("child.birth_date", SECRET),
        ("child.birth_date", "expected a date (YYYY-MM-DD) or a number of days since 1970-01-01"),
    ),
    (
        "other ISO date forms are refused",
        _set("child.birth_date", "20261105"),
        ("child.birth_date", "expected a date (YYYY-MM-DD) or a number of days since 1970-01-01"),
    ),
    (
        "impossible date",
        _set("child.birth_date", "2026-02-30"),
        ("child.birth_date", "date out of range or invalid"),
    ),
    (
        "date days out of range",
        _set("child.birth_date", 10**9),
        ("child.birth_date", "date out of range or invalid"),
    ),
    (
        "naive timestamp is refused",
        _set("occurred_at", "2026-11-07T14:20:00"),
        (
            "occurred_at",
            "expected an ISO 8601 date-time with a time zone, or milliseconds since the epoch",
        ),
    ),
    (
        "timestamp must be a date-time",
        _set("occurred_at", SECRET),
        (
            "occurred_at",
            "expected an ISO 8601 date-time with a time zone, or milliseconds since the epoch",
        ),
    ),
    (
        "timestamp out of range",
        _set("occurred_at", 2**62),
        ("occurred_at", "date-time out of range"),
    ),
    (
        "timestamp before the first UTC day",
        _set("occurred_at", "0001-01-01T00:00:00+00:01"),
        ("occurred_at", "date-time out of range"),
    ),
    (
        "unpaired surrogate",
        _set("mother.first_name", "Jo\ud800"),
        ("mother.first_name", "string contains an unpaired surrogate"),
    ),
]


@pytest.mark.parametrize(
    ("rule", "change", "expected"), BIRTH_RULES, ids=[row[0] for row in BIRTH_RULES]
)
def test_birth_validation_rules(
    rule: str, change: Callable[[dict[str, Any]], None], expected: tuple[str, str]
) -> None:
    data = birth_example()
    change(data)
    with pytest.raises(RecordValidationError) as raised:
        record_from_json(BIRTH.schema, data)
    assert raised.value.problems == [expected]
    assert SECRET not in str(raised.value)


def test_an_unknown_key_is_never_repeated_in_a_problem() -> None:
    data = birth_example()
    data["mother"]["512-44-9031"] = "x"
    data["512-44-9032"] = {"123-45-6789": 1}
    problems = problems_of(BIRTH.schema, data)
    assert [p for p, _ in problems] == ["mother.<key 13>", "<key 8>"]
    assert "512-44-903" not in repr(problems) and "123-45" not in repr(problems)


def test_every_problem_is_reported_at_once() -> None:
    data = birth_example()
    data["child"]["sex"] = "F"
    data["mother"]["ssn"] = 5
    data["extra"] = 1
    del data["county_fips"]
    data["child"]["birth_date"] = "1995-05-16x"
    assert problems_of(BIRTH.schema, data) == [
        ("child.birth_date", "expected a date (YYYY-MM-DD) or a number of days since 1970-01-01"),
        ("child.sex", "expected one of: FEMALE, MALE, UNDETERMINED"),
        ("mother.ssn", "expected a string"),
        ("county_fips", "required field missing"),
        ("<key 7>", "unknown field (key 7 of this object; its name is not repeated)"),
    ]


@pytest.mark.parametrize("data", [None, [], "birth", 42])
def test_a_record_must_be_a_json_object(data: Any) -> None:
    assert len(problems_of(BIRTH.schema, data)) == 1


def test_arrays_are_checked_item_by_item() -> None:
    enrollment = CATALOG.get("enrollment")
    data = dict(enrollment.example or {})
    data["diagnosis_codes"] = ["O99.320", 7, None]
    assert problems_of(enrollment.schema, data) == [
        ("diagnosis_codes[1]", "expected a string"),
        ("diagnosis_codes[2]", "null is not allowed here"),
    ]
    data["diagnosis_codes"] = "O99.320"
    assert problems_of(enrollment.schema, data) == [("diagnosis_codes", "expected a JSON array")]


def test_problems_in_records_of_an_array_name_each_item_however_long_the_array() -> None:
    schema = {"type": "record", "name": "Visits", "fields": [
        {"name": "visits", "type": {"type": "array", "items": {
            "type": "record", "name": "Visit", "fields": [
                {"name": "day", "type": {"type": "int", "logicalType": "date"}}]}}}]}
    visits = [{"day": "2026-01-02"} for _ in range(40)]
    for bad in (0, 17, 39):
        visits[bad] = {"day": "soon"}
    expected = "expected a date (YYYY-MM-DD) or a number of days since 1970-01-01"
    for _ in range(2):   # the second time, with the paths already seen
        assert problems_of(schema, {"visits": visits}) == [
            (f"visits[{bad}].day", expected) for bad in (0, 17, 39)]
    assert record_from_json(schema, {"visits": [{"day": "2026-01-02"}] * 40})["visits"][39] \
        == {"day": dt.date(2026, 1, 2)}


def test_nullable_record_accepts_null_and_checks_fields() -> None:
    referral = CATALOG.get("referral")
    data = dict(referral.example or {})
    data["reporter"] = None
    assert record_from_json(referral.schema, data)["reporter"] is None
    data["reporter"] = {"name": 5}
    assert problems_of(referral.schema, data) == [("reporter.name", "expected a string")]


def test_union_values_may_be_wrapped_as_avro_json() -> None:
    data = birth_example()
    data["mother"]["ssn"] = {"string": "512-44-9031"}
    data["mother"]["prenatal_visits"] = {"int": 7}
    record = record_from_json(BIRTH.schema, data)
    assert (record["mother"]["ssn"], record["mother"]["prenatal_visits"]) == ("512-44-9031", 7)


def field_schema(avro_type: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": [{"name": "v", "type": avro_type, **extra}]}


# (rule, field type, JSON value, expected record value, or expected problem message)
@dataclass(frozen=True)
class Refused:
    message: str
    path: str = "v"


# (rule, field type, JSON value, expected record value or Refused(problem message))
VALUE_RULES: list[tuple[str, Any, Any, Any]] = [
    ("long is 64-bit", "long", 2**63 - 1, 2**63 - 1),
    ("long out of range", "long", 2**63, Refused("integer outside the 64-bit range")),
    ("double accepts ints", "double", 3, 3.0),
    ("float accepts ints", "float", 3, 3.0),
    ("float is single precision", "float", 0.1, 0.10000000149011612),
    ("float range", "float", 1e39, Refused("number out of range")),
    ("numbers must be finite", "double", float("nan"), Refused("expected a finite number")),
    ("booleans are not numbers", "double", True, Refused("expected a number")),
    ("bytes as base64", "bytes", "aGk=", b"hi"),
    ("bytes must be base64", "bytes", "not base64!", Refused("expected base64-encoded bytes")),
    ("fixed size", {"type": "fixed", "name": "F", "size": 2}, "aGk=", b"hi"),
    (
        "fixed wrong size",
        {"type": "fixed", "name": "F", "size": 3},
        "aGk=",
        Refused("expected exactly 3 bytes"),
    ),
    ("map values", {"type": "map", "values": "int"}, {"a": 1}, {"a": 1}),
    (
        "map values checked",
        {"type": "map", "values": "int"},
        {"a": "x"},
        Refused("expected an integer", path="v{}"),
    ),  # map keys are data: not in paths
    ("multi-type union picks by value", ["null", "int", "string"], "x", "x"),
    ("multi-type union wrapped", ["null", "int", "string"], {"int": 4}, 4),
    (
        "multi-type union mismatch",
        ["null", "int", "string"],
        1.5,
        Refused("does not match any type of the union (null, int, string)"),
    ),
    (
        "timestamp-micros keeps micros",
        {"type": "long", "logicalType": "timestamp-micros"},
        "2026-01-02T03:04:05.123456Z",
        dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC),
    ),
    (
        "local timestamp refuses zones",
        {"type": "long", "logicalType": "local-timestamp-millis"},
        "2026-01-02T03:04:05Z",
        Refused(
            "expected an ISO 8601 date-time without a time zone, or milliseconds since the epoch"
        ),
    ),
    (
        "time-millis",
        {"type": "int", "logicalType": "time-millis"},
        "03:04:05.678",
        dt.time(3, 4, 5, 678000),
    ),
    ("time-millis from int", {"type": "int", "logicalType": "time-millis"}, 1000, dt.time(0, 0, 1)),
    (
        "uuid",
        {"type": "string", "logicalType": "uuid"},
        "12345678-1234-5678-1234-567812345678",
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
    ),
    ("uuid checked", {"type": "string", "logicalType": "uuid"}, "nope", Refused("expected a UUID")),
    (
        "decimal from string",
        {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2},
        "123.45",
        Decimal("123.45"),
    ),
    (
        "decimal scale",
        {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2},
        "1.234",
        Refused("expected a decimal number with at most 2 decimal places"),
    ),
    (
        "decimal precision",
        {"type": "bytes", "logicalType": "decimal", "precision": 3, "scale": 2},
        "12.5",
        Refused("more than 3 significant digits"),
    ),
]


@pytest.mark.parametrize(
    ("rule", "avro_type", "value", "expected"), VALUE_RULES, ids=[row[0] for row in VALUE_RULES]
)
def test_value_rules(rule: str, avro_type: Any, value: Any, expected: Any) -> None:
    schema = field_schema(avro_type)
    if isinstance(expected, Refused):
        assert problems_of(schema, {"v": value}) == [(expected.path, expected.message)]
        return
    record = record_from_json(schema, {"v": value})
    assert record == {"v": expected}
    assert round_trip(fastavro.parse_schema(schema), record) == record
    delivered = json.loads(json.dumps(record_to_json(schema, record)))
    assert record_from_json(schema, delivered) == record


@pytest.mark.parametrize(
    ("avro_type", "value", "delivered"),
    [
        ("bytes", b"\x00\xff", "AP8="),
        (
            {"type": "long", "logicalType": "timestamp-micros"},
            dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
            "2026-01-02T03:04:05.000006Z",
        ),
        (
            {"type": "long", "logicalType": "timestamp-millis"},
            dt.datetime(2026, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            "2026-01-02T03:04:05.000Z",
        ),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2},
            Decimal("1.50"),
            "1.50",
        ),
        (
            {"type": "array", "items": ["null", {"type": "int", "logicalType": "date"}]},
            [None, dt.date(2020, 1, 2)],
            [None, "2020-01-02"],
        ),
        ({"type": "map", "values": "bytes"}, {"k": b"hi"}, {"k": "aGk="}),
        (
            ["null", "string", {"type": "int", "logicalType": "date"}],
            dt.date(2020, 1, 2),
            "2020-01-02",
        ),
        (["null", "string", {"type": "int", "logicalType": "date"}], "text", "text"),
    ],
)
def test_to_json_values(avro_type: Any, value: Any, delivered: Any) -> None:
    assert record_to_json(field_schema(avro_type), {"v": value}) == {"v": delivered}


def test_to_json_follows_a_derived_view_schema() -> None:
    # A view might make fields nullable, generalise a date to a string, drop others.
    view = {
        "type": "record",
        "name": "BirthView",
        "namespace": "org.handoff.views",
        "fields": [
            {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {
                "name": "child",
                "type": {
                    "type": "record",
                    "name": "Child",
                    "fields": [
                        {"name": "birth_date", "type": ["null", "string"], "default": None},
                        {"name": "birth_weight_grams", "type": ["null", "int"], "default": None},
                    ],
                },
            },
        ],
    }
    record = {
        "occurred_at": dt.datetime(2026, 11, 7, 14, 20, tzinfo=dt.UTC),
        "child": {"birth_date": "2026-11", "birth_weight_grams": None},
    }
    assert record_to_json(view, round_trip(fastavro.parse_schema(view), record)) == {
        "occurred_at": "2026-11-07T14:20:00.000Z",
        "child": {"birth_date": "2026-11", "birth_weight_grams": None},
    }


def test_parsed_and_plain_schemas_give_the_same_results() -> None:
    record = record_from_json(BIRTH.schema, BIRTH.example)
    assert record_from_json(BIRTH.parsed, BIRTH.example) == record
    assert record_to_json(BIRTH.parsed, record) == record_to_json(BIRTH.schema, record)


def test_compiled_forms_are_cached() -> None:
    assert json_form(BIRTH.schema) is json_form(BIRTH.schema)
    assert json_form(copy.deepcopy(dict(BIRTH.schema))) is json_form(BIRTH.schema)


def test_recursive_schemas_compile() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "v", "type": {"type": "int", "logicalType": "date"}},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    record = record_from_json(node, {"v": "2020-01-01", "next": {"v": 1}})
    assert record == {"v": dt.date(2020, 1, 1), "next": {"v": dt.date(1970, 1, 2), "next": None}}
    assert record_to_json(node, record) == {
        "v": "2020-01-01",
        "next": {"v": "1970-01-02", "next": None},
    }


@pytest.mark.parametrize("schema", ["string", {"type": "nonsense"}])
def test_non_record_or_invalid_schemas_are_refused(schema: Any) -> None:
    with pytest.raises(SchemaError):
        record_from_json(schema, {})


def test_bytes_defaults_use_avro_json_encoding() -> None:
    schema = field_schema("bytes", default="\u00ff\u0000")
    assert record_from_json(schema, {}) == {"v": b"\xff\x00"}
