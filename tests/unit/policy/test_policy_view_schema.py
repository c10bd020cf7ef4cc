"""View schemas: what a subscription can ever receive, as an Avro schema it can decode."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from policy_cases import AT, DEMO, agreement, bundle_with, engine_for, example, grant, ms

from policy import ConsentView, PolicyError

ENGINE = engine_for(DEMO)


def fields_of(schema: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaf path → field entry of an Avro record schema."""
    out: dict[str, Any] = {}
    for entry in schema["fields"]:
        kind = entry["type"]
        inner = next((t for t in kind if t != "null"), None) if isinstance(kind, list) else kind
        if isinstance(inner, dict) and inner.get("type") == "record":
            out.update(fields_of(inner, f"{prefix}{entry['name']}."))
        else:
            out[f"{prefix}{entry['name']}"] = entry
    return out


def test_view_schema_is_named_under_the_subscription_namespace() -> None:
    schema = ENGINE.view_schema("hv-births", "birth", 1)
    assert (schema["namespace"], schema["name"]) == ("handoff.view.hv_births", "Birth")
    assert fastavro.parse_schema(schema)["name"] == "handoff.view.hv_births.Birth"


@pytest.mark.parametrize(("subscription", "path", "expected"), [
    # never released under any agreement of the subscription: absent
    ("hv-births", "mother.ssn", None),
    ("hv-births", "hospital_id", None),
    ("eval-births", "mother.first_name", None),
    # always released as is: the source type, not nullable
    ("hv-births", "child.last_name", "string"),
    ("hv-births", "child.birth_date", {"type": "int", "logicalType": "date"}),
    # nullable in the source: stays nullable
    ("hv-births", "mother.phone", ["null", "string"]),
    # needs consent: nullable with default null
    ("hv-births", "child.birth_weight_grams", ["null", "int"]),
    # transformed: the transform's type
    ("eval-births", "child.birth_date", "string"),
    ("eval-births", "subject_id", "string"),
    ("eval-births", "mother.zip", ["null", "string"]),
])
def test_view_field_types(subscription: str, path: str, expected: Any) -> None:
    fields = fields_of(ENGINE.view_schema(subscription, "birth", 1))
    if expected is None:
        assert path not in fields
        return
    assert fields[path]["type"] == expected
    if isinstance(expected, list):
        assert fields[path]["default"] is None


def test_transformed_fields_say_how() -> None:
    fields = fields_of(ENGINE.view_schema("eval-births", "birth", 1))
    assert fields["child.birth_date"]["transform"] == "generalise:month"
    assert fields["mother.zip"]["transform"] == "generalise:zip3"


def test_nested_records_are_kept_and_optional_ones_stay_optional() -> None:
    schema = ENGINE.view_schema("hv-referrals", "referral", 1)
    by_name = {f["name"]: f for f in schema["fields"]}
    assert by_name["caregiver"]["type"]["type"] == "record"
    assert by_name["child"]["type"][0] == "null"
    assert "reporter" not in by_name


def test_a_field_two_agreements_treat_differently_takes_both_types() -> None:
    clear = agreement("a-2026", "county-general", "state-evaluation", "program_evaluation",
                      "birth", ["event_id", "child.birth_date"], expires="2026-06-30")
    coarse = agreement("a-2027", "county-general", "state-evaluation", "program_evaluation",
                       "birth", ["event_id", {"child.birth_date": {"generalise": "year"}}],
                       effective="2026-07-01")
    subs = [{"id": "eval", "agency": "state-evaluation", "purpose": "program_evaluation",
             "event_types": ["birth"]}]
    engine = engine_for(bundle_with([clear, coarse], subs))
    schema = engine.view_schema("eval", "birth", 1)
    assert fields_of(schema)["child.birth_date"]["type"] == [
        "string", {"type": "int", "logicalType": "date"}]
    parsed = fastavro.parse_schema(schema)
    for at in (ms("2026-03-01"), AT):
        view = engine.decide("birth", 1, example("birth"), "county-general", "eval",
                             ConsentView(), at).view
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, view)
        buffer.seek(0)
        assert fastavro.schemaless_reader(buffer, parsed) == view


def test_a_view_schema_decodes_what_was_written_with_it() -> None:
    consents = ConsentView()
    consents.apply(grant(categories=["*"]), ms("2026-01-01"), "county-general")
    decision = ENGINE.decide("birth", 1, example("birth"), "county-general", "hv-births",
                             consents, AT)
    parsed = fastavro.parse_schema(ENGINE.view_schema("hv-births", "birth", 1))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, decision.view)
    buffer.seek(0)
    assert fastavro.schemaless_reader(buffer, parsed) == decision.view


def test_view_schema_for_a_type_the_subscription_does_not_take() -> None:
    with pytest.raises(PolicyError, match="does not receive referral"):
        ENGINE.view_schema("hv-births", "referral", 1)
