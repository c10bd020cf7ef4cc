"""Avro schema resolution (spec 1.11) as `reader_can_read` reports it, one row per rule."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.compatibility import CompatibilityLevel, incompatibilities, reader_can_read
from schemas.errors import SchemaError


def record(*fields: dict[str, Any], name: str = "Event", **extra: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "namespace": "org.test",
        "fields": list(fields),
        **extra,
    }


def field(name: str, avro_type: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": avro_type, **extra}


def enum(symbols: list[str], name: str = "Kind", **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": name, "symbols": symbols, **extra}


def mother(ssn_type: Any) -> dict[str, Any]:
    return record(field("mother", record(field("ssn", ssn_type), name="Mother")))


# (rule, reader, writer, expected problems)
RULES: list[tuple[str, Any, Any, list[str]]] = [
    ("same primitive", "string", "string", []),
    ("int promotes to long", "long", "int", []),
    ("int promotes to float", "float", "int", []),
    ("int promotes to double", "double", "int", []),
    ("long promotes to float", "float", "long", []),
    ("long promotes to double", "double", "long", []),
    ("float promotes to double", "double", "float", []),
    ("string reads as bytes", "bytes", "string", []),
    ("bytes read as string", "string", "bytes", []),
    ("long does not narrow to int", "int", "long", ["<root>: type changed from long to int"]),
    (
        "double does not narrow to float",
        "float",
        "double",
        ["<root>: type changed from double to float"],
    ),
    (
        "nested field type change names the path",
        mother("int"),
        mother("string"),
        ["mother.ssn: type changed from string to int"],
    ),
    (
        "reader field with a default may be absent in writer",
        record(field("a", "int"), field("b", "string", default="")),
        record(field("a", "int")),
        [],
    ),
    (
        "reader field without a default must be in writer",
        record(field("a", "int"), field("b", "string")),
        record(field("a", "int")),
        ["b: field added without a default"],
    ),
    (
        "writer fields absent in reader are ignored",
        record(field("a", "int")),
        record(field("a", "int"), field("b", "string")),
        [],
    ),
    (
        "reader field alias matches writer field",
        record(field("new", "int", aliases=["old"])),
        record(field("old", "int")),
        [],
    ),
    (
        "records match by full name",
        record(name="Other"),
        record(),
        [
            "<root>: record renamed from org.test.Event to org.test.Other "
            "(add the old name to its aliases)"
        ],
    ),
    ("record alias matches writer name", record(name="Other", aliases=["Event"]), record(), []),
    ("enum symbol added in reader", enum(["A", "B", "C"]), enum(["A", "B"]), []),
    (
        "enum symbol missing in reader",
        enum(["A"]),
        enum(["A", "B", "C"]),
        ["<root>: enum symbols removed without an enum default: B, C"],
    ),
    ("enum default covers missing symbols", enum(["A", "Z"], default="Z"), enum(["A", "B"]), []),
    (
        "enums match by name",
        enum(["A"], name="Other"),
        enum(["A"]),
        ["<root>: enum renamed from Kind to Other (add the old name to its aliases)"],
    ),
    (
        "array items promote",
        {"type": "array", "items": "long"},
        {"type": "array", "items": "int"},
        [],
    ),
    (
        "array items checked recursively",
        record(field("codes", {"type": "array", "items": "int"})),
        record(field("codes", {"type": "array", "items": "string"})),
        ["codes[]: type changed from string to int"],
    ),
    (
        "map values checked recursively",
        record(field("scores", {"type": "map", "values": "string"})),
        record(field("scores", {"type": "map", "values": "double"})),
        ["scores{}: type changed from double to string"],
    ),
    (
        "array is not a map",
        {"type": "array", "items": "int"},
        {"type": "map", "values": "int"},
        ["<root>: type changed from map<int> to array<int>"],
    ),
    (
        "fixed sizes must match",
        {"type": "fixed", "name": "F", "size": 8},
        {"type": "fixed", "name": "F", "size": 16},
        ["<root>: fixed size changed from 16 to 8"],
    ),
    (
        "fixed names must match",
        {"type": "fixed", "name": "G", "size": 8},
        {"type": "fixed", "name": "F", "size": 8},
        ["<root>: fixed renamed from F to G (add the old name to its aliases)"],
    ),
    ("union gains a branch", ["null", "string", "int"], ["null", "string"], []),
    (
        "union loses a branch",
        ["null", "string"],
        ["null", "string", "int"],
        ["<root>: union no longer accepts int"],
    ),
    ("writer union branch promotes into reader union", ["null", "long"], ["null", "int"], []),
    ("plain writer matches a reader union branch", ["null", "string"], "string", []),
    ("plain writer promotes into a reader union branch", ["null", "double"], "int", []),
    (
        "plain writer matches no reader union branch",
        ["null", "string"],
        "int",
        ["<root>: type changed from int to union[null, string]"],
    ),
    (
        "writer union into plain reader needs every branch",
        "string",
        ["null", "string"],
        ["<root>: type changed from union[null, string] to string"],
    ),
    ("writer union into plain reader that reads every branch", "double", ["int", "float"], []),
    (
        "record inside a union is checked field by field",
        record(field("child", ["null", record(field("a", "int"), field("b", "int"), name="C")])),
        record(field("child", ["null", record(field("a", "int"), name="C")])),
        ["child.b: field added without a default"],
    ),
    (
        "named type references are resolved at every use",
        record(field("a", enum(["X"])), field("b", "org.test.Kind")),
        record(field("a", enum(["X", "Y"])), field("b", "Kind")),
        [
            "a: enum symbols removed without an enum default: Y",
            "b: enum symbols removed without an enum default: Y",
        ],
    ),
    ("logical types are ignored", {"type": "int", "logicalType": "date"}, "int", []),
    (
        "every problem is reported",
        record(field("a", "string"), field("b", "int"), field("c", "long")),
        record(field("a", "int"), field("b", "long")),
        [
            "a: type changed from int to string",
            "b: type changed from long to int",
            "c: field added without a default",
        ],
    ),
]


@pytest.mark.parametrize(
    ("rule", "reader", "writer", "expected"), RULES, ids=[row[0] for row in RULES]
)
def test_reader_can_read(rule: str, reader: Any, writer: Any, expected: list[str]) -> None:
    assert reader_can_read(reader, writer) == expected


def test_recursive_types_are_compared_without_looping() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "value", "type": "int"},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    wider = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "value", "type": "long"},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    assert reader_can_read(wider, node) == []
    assert reader_can_read(node, wider) == ["value: type changed from long to int"]


def test_schemas_may_be_json_text() -> None:
    assert reader_can_read('"long"', '"int"') == []


def test_invalid_schema_raises_schema_error() -> None:
    with pytest.raises(SchemaError):
        reader_can_read({"type": "nonsense"}, "int")


OLD = record(field("a", "int"), field("b", "string"))
ADD_WITHOUT_DEFAULT = record(field("a", "int"), field("b", "string"), field("c", "int"))
REMOVE_WITHOUT_DEFAULT = record(field("a", "int"))


@pytest.mark.parametrize(
    ("level", "new", "expected"),
    [
        (CompatibilityLevel.BACKWARD, ADD_WITHOUT_DEFAULT, ["c: field added without a default"]),
        (CompatibilityLevel.BACKWARD, REMOVE_WITHOUT_DEFAULT, []),
        (CompatibilityLevel.FORWARD, ADD_WITHOUT_DEFAULT, []),
        (
            CompatibilityLevel.FORWARD,
            REMOVE_WITHOUT_DEFAULT,
            ["b: field removed, but the older schema has no default for it"],
        ),
        (CompatibilityLevel.FULL, ADD_WITHOUT_DEFAULT, ["c: field added without a default"]),
        (
            CompatibilityLevel.FULL,
            REMOVE_WITHOUT_DEFAULT,
            ["b: field removed, but the older schema has no default for it"],
        ),
        (CompatibilityLevel.NONE, record(field("a", "string")), []),
    ],
)
def test_levels_check_the_right_direction(
    level: CompatibilityLevel, new: Any, expected: list[str]
) -> None:
    assert incompatibilities(new, OLD, level) == expected


def test_forward_messages_speak_of_old_and_new() -> None:
    old = record(field("a", enum(["A"])), field("n", "long"))
    new = record(field("a", enum(["A", "B"])), field("n", "int"))
    assert incompatibilities(new, old, CompatibilityLevel.FORWARD) == [
        "a: enum symbols added that readers of the older schema cannot read "
        "(it has no enum default): B",
    ]
    assert incompatibilities(old, new, CompatibilityLevel.FORWARD) == [
        "n: type changed from int to long",
    ]


@pytest.mark.parametrize(
    ("level", "transitive", "new_reads_old", "old_reads_new"),
    [
        ("BACKWARD", False, True, False),
        ("BACKWARD_TRANSITIVE", True, True, False),
        ("FORWARD", False, False, True),
        ("FORWARD_TRANSITIVE", True, False, True),
        ("FULL", False, True, True),
        ("FULL_TRANSITIVE", True, True, True),
        ("NONE", False, False, False),
    ],
)
def test_level_meanings(
    level: str, transitive: bool, new_reads_old: bool, old_reads_new: bool
) -> None:
    chosen = CompatibilityLevel(level)
    assert (chosen.transitive, chosen.new_reads_old, chosen.old_reads_new) == (
        transitive,
        new_reads_old,
        old_reads_new,
    )
