"""The registry parts Confluent clients rely on: lookup by schema, soft deletes that keep
ids readable, and which subjects hold an id; and event types that get their topics
before they are known."""

from __future__ import annotations

import json

import pytest

from broker.event_types import EventTypes
from schemas.catalog import SchemaCatalog
from schemas.errors import UnknownSchemaIdError, UnknownSubjectError, UnknownVersionError
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore

V1 = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string",
                                                  "doc": "the a"}]}
V2 = {"type": "record", "name": "R", "fields": [
    {"name": "a", "type": "string", "doc": "the a"},
    {"name": "b", "type": ["null", "int"], "default": None}]}


def test_lookup_finds_the_version_by_text_or_by_how_it_reads():
    registry = SchemaRegistry(InMemoryRegistryStore())
    first = registry.register("s", V1)
    registry.register("s", V2)
    assert registry.lookup("s", json.dumps(V1)).version == first.version
    undocumented = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]}
    assert registry.lookup("s", undocumented).schema_id == first.schema_id
    with pytest.raises(UnknownSchemaIdError):
        registry.lookup("s", {"type": "record", "name": "R", "fields": []})
    with pytest.raises(UnknownSubjectError):
        registry.lookup("nope", V1)


def test_a_soft_deleted_version_leaves_listings_but_its_id_still_reads():
    store = InMemoryRegistryStore()
    registry = SchemaRegistry(store)
    first, second = registry.register("s", V1), registry.register("s", V2)
    assert registry.delete("s", 2) == [2]
    assert registry.versions("s") == [1] and registry.get("s").version == 1
    assert registry.by_id(second.schema_id).schema == second.schema
    with pytest.raises(UnknownVersionError):
        registry.get("s", 2)
    assert registry.get("s", 2, include_deleted=True).deleted
    # Survives a restart, and everything deleted hides the subject.
    again = SchemaRegistry(store)
    assert again.versions("s") == [1]
    assert again.delete("s") == [1]
    assert "s" not in again.subjects() and "s" in again.subjects(include_deleted=True)
    with pytest.raises(UnknownSubjectError):
        again.versions("s")
    assert [(u.subject, u.version) for u in again.usages(first.schema_id,
                                                         include_deleted=True)] == [("s", 1)]
    assert again.usages(first.schema_id) == []


def test_a_new_event_type_gets_its_topics_before_it_is_known():
    registry = SchemaRegistry(InMemoryRegistryStore())
    seen_when_made: list[tuple[str, bool]] = []
    types: EventTypes | None = None

    def make_topics(event_type: str) -> None:
        seen_when_made.append((event_type, types is not None and event_type in types.names()))

    types = EventTypes(registry, SchemaCatalog.load(), on_new_type=make_topics)
    assert ("birth", False) in seen_when_made
    schema = json.loads(json.dumps(types.latest("birth").schema.schema))
    schema["name"] = "SudDischarge"
    types.add_version("sud_discharge", schema)
    assert seen_when_made[-1] == ("sud_discharge", False)
    assert types.known("sud_discharge")

    # A version deleted through the registry no longer counts; the type goes with its last.
    registry.delete("events.sud_discharge-value")
    types.deleted()
    assert not types.known("sud_discharge")
    assert types.by_id(types.latest("birth").schema_id) is not None
