"""The catalog's view of event schemas: leaf fields as dotted paths with their tags."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.catalog import SchemaCatalog, build_event_schema
from schemas.errors import SchemaError

ENVELOPE = [
    {"name": "event_id", "type": "string"},
    {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "subject_id", "type": "string", "tags": ["identifier.direct"]},
]


def event(*fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Visit",
        "namespace": "org.test",
        "fields": [*ENVELOPE, *fields],
    }


PERSON = {
    "type": "record",
    "name": "Person",
    "fields": [
        {"name": "ssn", "type": ["null", "string"], "default": None, "tags": ["identifier.direct"]},
        {
            "name": "sex",
            "type": {"type": "enum", "name": "Sex", "symbols": ["F", "M"]},
            "tags": ["identifier.quasi"],
        },
    ],
}


def test_builtin_schemas_load_with_tagged_leaf_fields() -> None:
    catalog = SchemaCatalog.load()
    assert catalog.event_types() == ["birth", "birth_match", "consent", "enrollment",
                                     "handoff_overdue", "referral", "referral_status",
                                     "screening", "watch_list_entry"]
    birth = catalog.get("birth")
    assert birth.field("mother.ssn").tags == frozenset({"identifier.direct"})
    assert birth.field("mother.ssn").nullable
    assert birth.field("child.birth_date").logical_type == "date"


def test_a_record_type_used_twice_keeps_its_tags_at_both_paths() -> None:
    schema = build_event_schema(
        "visit",
        event(
            {"name": "mother", "type": PERSON},
            {"name": "father", "type": ["null", "Person"], "default": None},
            {"name": "guardian", "type": "org.test.Person"},
        ),
    )
    for who, nullable in [("mother", False), ("father", True), ("guardian", False)]:
        ssn, sex = schema.field(f"{who}.ssn"), schema.field(f"{who}.sex")
        assert ssn.tags == frozenset({"identifier.direct"})
        assert (sex.tags, sex.base_type) == (frozenset({"identifier.quasi"}), "enum")
        assert sex.nullable is nullable
    assert not schema.has_field("father")


def test_an_enum_referenced_by_name_reports_its_base_type() -> None:
    schema = build_event_schema(
        "visit",
        event(
            {"name": "mother", "type": PERSON},
            {"name": "child_sex", "type": "Sex", "tags": ["identifier.quasi"]},
        ),
    )
    assert schema.field("child_sex").base_type == "enum"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ([{"name": "n", "type": "string", "tags": ["secret"]}], "n: unknown tag 'secret'"),
        (
            [{"name": "p", "type": PERSON, "tags": ["health"]}],
            "p: tag the fields of a nested record, not the record",
        ),
        (
            [
                {
                    "name": "n",
                    "type": {
                        "type": "record",
                        "name": "Node",
                        "fields": [{"name": "next", "type": ["null", "Node"], "default": None}],
                    },
                }
            ],
            "n.next: a record may not contain itself",
        ),
    ],
)
def test_schema_problems_are_reported(fields: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(SchemaError, match=problem):
        build_event_schema("visit", event(*fields))


def test_envelope_fields_are_required() -> None:
    schema = {"type": "record", "name": "Bare", "fields": [{"name": "x", "type": "int"}]}
    with pytest.raises(SchemaError, match="missing required field 'event_id'"):
        build_event_schema("bare", schema)
