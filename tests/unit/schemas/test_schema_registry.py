"""The schema registry: versions, global ids, compatibility levels, persistence."""

from __future__ import annotations

import json
import threading
from typing import Any

import fastavro
import pytest

from schemas.catalog import SchemaCatalog
from schemas.compatibility import CompatibilityLevel
from schemas.errors import IncompatibleSchemaError, SchemaError, UnknownSchemaError
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore, RegistrySnapshot, StoredSchema


def event(*extra_fields: dict[str, Any], name: str = "Ping") -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "namespace": "org.test",
        "fields": [{"name": "id", "type": "string"}, *extra_fields],
    }


V1 = event()
V2 = event({"name": "note", "type": ["null", "string"], "default": None})
NO_DEFAULT = event({"name": "count", "type": "int"})


@pytest.fixture
def store() -> InMemoryRegistryStore:
    return InMemoryRegistryStore()


@pytest.fixture
def registry(store: InMemoryRegistryStore) -> SchemaRegistry:
    return SchemaRegistry(store)


def test_first_registration_is_version_1_with_a_new_id(registry: SchemaRegistry) -> None:
    registered = registry.register("ping", V1)
    assert (registered.subject, registered.version) == ("ping", 1)
    assert 0 < registered.schema_id < 2**31
    assert registered.as_json() == V1


def test_registering_the_same_schema_again_returns_the_existing_version(
    registry: SchemaRegistry,
) -> None:
    first = registry.register("ping", V1)
    registry.register("ping", V2)
    # Key order and whitespace do not matter: the text is canonicalised.
    again = registry.register("ping", json.dumps(dict(reversed(list(V1.items()))), indent=2))
    assert again == first
    assert registry.versions("ping") == [1, 2]


def test_the_same_schema_under_another_subject_shares_its_id(registry: SchemaRegistry) -> None:
    first = registry.register("ping", V1)
    other = registry.register("pong", V1)
    assert (other.version, other.schema_id) == (1, first.schema_id)
    assert registry.register("pong", V2).schema_id not in (first.schema_id, 0)


def test_a_compatible_new_version_is_accepted(registry: SchemaRegistry) -> None:
    registry.register("ping", V1)
    first = registry.get("ping")
    second = registry.register("ping", V2)
    assert second.version == 2 and second.schema_id != first.schema_id
    assert registry.get("ping").version == 2


def test_an_incompatible_version_is_refused_with_every_problem(registry: SchemaRegistry) -> None:
    registry.register("ping", V1)
    broken = event({"name": "count", "type": "int"}, {"name": "size", "type": "long"})
    broken["fields"][0]["type"] = "int"
    with pytest.raises(IncompatibleSchemaError) as raised:
        registry.register("ping", broken)
    message = str(raised.value)
    assert "BACKWARD" in message
    assert "id: type changed from string to int" in message
    assert "count: field added without a default" in message
    assert "size: field added without a default" in message
    assert registry.versions("ping") == [1]


@pytest.mark.parametrize(
    ("level", "accepted"),
    [
        (CompatibilityLevel.BACKWARD, False),
        (CompatibilityLevel.FORWARD, True),
        (CompatibilityLevel.FULL, False),
        (CompatibilityLevel.NONE, True),
    ],
)
def test_the_subject_level_decides(
    registry: SchemaRegistry, level: CompatibilityLevel, accepted: bool
) -> None:
    registry.register("ping", V1)
    registry.set_compatibility("ping", level)
    if accepted:
        assert registry.register("ping", NO_DEFAULT).version == 2
    else:
        with pytest.raises(IncompatibleSchemaError):
            registry.register("ping", NO_DEFAULT)


def test_transitive_levels_check_every_earlier_version(registry: SchemaRegistry) -> None:
    with_int = event({"name": "x", "type": "int"})
    without = event()
    with_string = event({"name": "x", "type": "string", "default": ""})
    for level, accepted in [("BACKWARD", True), ("BACKWARD_TRANSITIVE", False)]:
        subject = f"s-{level}"
        registry.set_compatibility(subject, level)
        registry.register(subject, with_int)
        registry.register(subject, without)
        if accepted:
            assert registry.register(subject, with_string).version == 3
        else:
            with pytest.raises(IncompatibleSchemaError, match=r"version 1: x: type changed"):
                registry.register(subject, with_string)


def test_default_level_is_backward_and_settable(store: InMemoryRegistryStore) -> None:
    assert SchemaRegistry(store).compatibility("anything") == CompatibilityLevel.BACKWARD
    assert SchemaRegistry(store, "full").compatibility("x") == CompatibilityLevel.FULL
    registry = SchemaRegistry(store)
    registry.set_compatibility(None, CompatibilityLevel.NONE)
    registry.set_compatibility("strict", CompatibilityLevel.FULL_TRANSITIVE)
    assert registry.compatibility("anything") == CompatibilityLevel.NONE
    assert registry.compatibility() == CompatibilityLevel.NONE
    assert registry.compatibility("strict") == CompatibilityLevel.FULL_TRANSITIVE


def test_unknown_level_is_refused(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaError, match="unknown compatibility level"):
        registry.set_compatibility("ping", "SIDEWAYS")


def test_state_survives_a_restart(store: InMemoryRegistryStore) -> None:
    registry = SchemaRegistry(store)
    registry.register("ping", V1)
    registry.register("ping", V2)
    registry.register("pong", V1)
    registry.set_compatibility("ping", CompatibilityLevel.NONE)
    registry.set_compatibility(None, CompatibilityLevel.FORWARD)

    reopened = SchemaRegistry(InMemoryRegistryStore(store.load()))
    assert reopened.subjects() == ["ping", "pong"]
    assert reopened.get("ping", 2) == registry.get("ping", 2)
    assert reopened.get("pong").schema_id == registry.get("ping", 1).schema_id
    assert reopened.compatibility("ping") == CompatibilityLevel.NONE
    assert reopened.compatibility("pong") == CompatibilityLevel.FORWARD
    other = reopened.register("other", event(name="Other")).schema_id
    assert other not in {registry.get("ping", v).schema_id for v in (1, 2)}


def test_registries_in_different_processes_agree_on_ids_without_coordinating() -> None:
    # Two registries on one shared store, each registering without seeing the other's
    # latest writes, as two router processes do.
    shared = InMemoryRegistryStore()
    first, second = SchemaRegistry(shared), SchemaRegistry(shared)
    a = first.register("view-a", V1)
    b = second.register("view-b", event(name="Other"))
    assert a.schema_id != b.schema_id
    assert second.register("view-c", V1).schema_id == a.schema_id
    assert first.by_id(b.schema_id).schema == b.schema      # found by re-reading the store


def test_an_id_clash_moves_to_the_next_free_id(monkeypatch) -> None:
    import hashlib

    registry = SchemaRegistry(InMemoryRegistryStore())
    monkeypatch.setattr(hashlib, "sha256", lambda data: type("H", (), {
        "digest": lambda self: b"\x00\x00\x00\x07" + bytes(28)})())
    one = registry.register("one", V1).schema_id
    two = registry.register("two", event(name="Other")).schema_id
    assert (one, two) == (7, 8)


class FailingStore(InMemoryRegistryStore):
    def save_schema(self, schema: StoredSchema) -> None:
        raise OSError("disk full")


def test_a_failed_save_leaves_the_registry_unchanged() -> None:
    registry = SchemaRegistry(FailingStore())
    with pytest.raises(OSError):
        registry.register("ping", V1)
    assert registry.subjects() == []
    with pytest.raises(UnknownSchemaError):
        registry.by_id(1)


def test_lookups(registry: SchemaRegistry) -> None:
    registry.register("ping", V1)
    second = registry.register("ping", V2)
    assert registry.get("ping", 1).as_json() == V1
    assert registry.get("ping", "latest").as_json() == V2
    assert registry.get("ping", -1).version == 2
    assert registry.by_id(second.schema_id).as_json() == V2
    assert registry.versions("ping") == [1, 2]


@pytest.mark.parametrize(
    "lookup",
    [
        lambda r: r.get("nope"),
        lambda r: r.get("ping", 7),
        lambda r: r.versions("nope"),
        lambda r: r.by_id(99),
        lambda r: r.parsed(99),
        lambda r: r.check("ping", V1, 7),
    ],
)
def test_unknown_subject_version_or_id(registry: SchemaRegistry, lookup: Any) -> None:
    registry.register("ping", V1)
    with pytest.raises(UnknownSchemaError):
        lookup(registry)


def test_parsed_schema_is_cached_and_usable(registry: SchemaRegistry) -> None:
    schema_id = registry.register("ping", V1).schema_id
    parsed = registry.parsed(schema_id)
    assert registry.parsed(schema_id) is parsed
    reopened = SchemaRegistry(
        InMemoryRegistryStore(
            RegistrySnapshot(
                (StoredSchema("ping", 1, schema_id, registry.by_id(schema_id).schema),)
            )
        )
    )
    assert reopened.parsed(schema_id) is reopened.parsed(schema_id)
    fastavro.validation.validate({"id": "x"}, reopened.parsed(schema_id), raise_errors=True)


def test_check_reports_without_registering(registry: SchemaRegistry) -> None:
    assert registry.check("new-subject", NO_DEFAULT) == []
    registry.register("ping", V1)
    registry.register("ping", V2)
    assert registry.check("ping", NO_DEFAULT) == ["count: field added without a default"]
    assert registry.check("ping", NO_DEFAULT, version=1) == ["count: field added without a default"]
    assert registry.check("ping", V2) == []
    assert registry.versions("ping") == [1, 2]


INVALID_SCHEMAS = [
    ("not JSON", "{'type': 'record'"),
    ("unknown type", {"type": "nonsense"}),
    ("record without a name", {"type": "record", "fields": []}),
    ("empty union", event({"name": "u", "type": []})),
    ("duplicate union branch", event({"name": "u", "type": ["null", "string", "string"]})),
    ("nested union", event({"name": "u", "type": ["null", ["int", "string"]]})),
    ("duplicate field", event({"name": "id", "type": "int"})),
    ("invalid field name", event({"name": "first-name", "type": "string"})),
    ("empty enum", event({"name": "e", "type": {"type": "enum", "name": "E", "symbols": []}})),
    (
        "enum default not a symbol",
        event(
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A"], "default": "B"}}
        ),
    ),
    (
        "negative fixed size",
        event({"name": "f", "type": {"type": "fixed", "name": "F", "size": -1}}),
    ),
    ("default of the wrong type", event({"name": "n", "type": "int", "default": "x"})),
    (
        "recursive type",
        {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]},
    ),
    ("array of zero-byte items", event({"name": "a", "type": {"type": "array", "items": "null"}})),
]


@pytest.mark.parametrize(("case", "schema"), INVALID_SCHEMAS, ids=[c for c, _ in INVALID_SCHEMAS])
def test_invalid_schemas_are_refused(registry: SchemaRegistry, case: str, schema: Any) -> None:
    with pytest.raises(SchemaError):
        registry.register("ping", schema)
    assert registry.subjects() == []


@pytest.mark.parametrize("subject", ["", "x" * 256, "bad\nsubject", None])
def test_invalid_subjects_are_refused(registry: SchemaRegistry, subject: Any) -> None:
    with pytest.raises(SchemaError):
        registry.register(subject, V1)


def test_every_builtin_event_schema_registers() -> None:
    registry = SchemaRegistry(InMemoryRegistryStore())
    catalog = SchemaCatalog.load()
    ids = {
        registry.register(f"events.{t}-value", catalog.get(t).schema).schema_id
        for t in catalog.event_types()
    }
    assert len(ids) == len(catalog.event_types())


def test_concurrent_registrations_get_distinct_versions(registry: SchemaRegistry) -> None:
    schemas = [event({"name": f"f{i}", "type": "int", "default": 0}) for i in range(24)]
    registry.set_compatibility("ping", CompatibilityLevel.NONE)
    results: list[Any] = []

    def register(chunk: list[dict[str, Any]]) -> None:
        results.extend(registry.register("ping", s) for s in chunk)

    threads = [threading.Thread(target=register, args=(schemas[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.version for r in results) == list(range(1, 25))
    assert len({r.schema_id for r in results}) == 24
