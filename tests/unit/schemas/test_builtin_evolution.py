"""A built-in event schema that changes is registered at start as a new version of its
subject, so each change must keep the registry's default BACKWARD rule against what
earlier releases registered (kept under tests/fixtures/schemas/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.catalog import SchemaCatalog
from schemas.errors import RecordValidationError
from schemas.jsonform import record_from_json
from schemas.registry import SchemaRegistry
from schemas.store import InMemoryRegistryStore
from schemas.wire import WireCodec

EARLIER = Path(__file__).parents[2] / "fixtures" / "schemas"
CATALOG = SchemaCatalog.load()


@pytest.mark.parametrize("path", sorted(EARLIER.glob("*.avsc")), ids=lambda p: p.name)
def test_a_changed_builtin_schema_registers_over_its_earlier_release(path: Path):
    event_type = path.name.split(".")[0]
    registry = SchemaRegistry(InMemoryRegistryStore())    # BACKWARD by default
    subject = f"events.{event_type}-value"
    old = registry.register(subject, json.loads(path.read_text(encoding="utf-8")))
    new = registry.register(subject, CATALOG.get(event_type).schema)
    assert new.version == old.version + 1
    # Events written under the earlier release still read under the new one.
    codec = WireCodec(registry)
    example = CATALOG.get(event_type).example
    written = codec.encode(old.schema_id, record_from_json(json.loads(old.schema), example))
    _, read = codec.decode(written, reader_schema_id=new.schema_id)
    assert read["event_id"] == example["event_id"]


def test_birth_facts_nobody_stated_may_be_null_but_must_be_sent():
    birth = CATALOG.get("birth")
    example = dict(birth.example)
    example["county_fips"] = None
    example["child"] = {**example["child"], "nicu_admission": None,
                        "birth_weight_grams": None, "gestational_age_weeks": None}
    example["mother"] = {**example["mother"], "medicaid_covered_birth": None}
    record = record_from_json(birth.schema, example)
    assert record["county_fips"] is None and record["child"]["nicu_admission"] is None
    del example["county_fips"]
    with pytest.raises(RecordValidationError, match="county_fips"):
        record_from_json(birth.schema, example)
