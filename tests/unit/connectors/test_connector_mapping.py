"""Declarative field mapping: one row per case, the event or the problems spelled out."""

import sys
import types

import pytest

from connectors.errors import MappingError
from connectors.mapping import RecordProblem, load_mapping

BIRTH_FIELDS = {
    "subject_id": "mrn",
    "occurred_at": {"from": "recorded", "convert": [{"datetime": "%m/%d/%Y %H:%M"}]},
    "child.birth_date": {"from": "dob", "convert": [{"date": "%m/%d/%Y"}]},
    "child.sex": {"from": "sex", "convert": ["upper", {"lookup": {"F": "FEMALE",
                                                                  "M": "MALE"}}]},
    "child.birth_weight_grams": {"from": "weight", "convert": ["int"]},
    "child.nicu_admission": {"from": "nicu", "convert": ["bool"]},
    "mother.phone": {"from": "phone", "default": None},
    "hospital_id": {"const": "1467533928"},
}

ROW = {"mrn": " MPI-1 ", "recorded": "11/06/2026 14:20", "dob": "11/06/2026", "sex": "f",
       "weight": "2,410", "nicu": "Yes", "phone": ""}


def mapped(row, fields=None, **spec):
    mapping = load_mapping({"event_type": "birth", "fields": fields or BIRTH_FIELDS, **spec})
    return mapping.apply(row)


def test_a_row_maps_to_a_nested_event_with_converted_values():
    result = mapped(ROW)
    assert result.problems == ()
    assert result.event == {
        "subject_id": "MPI-1",
        "occurred_at": "2026-11-06T14:20:00.000Z",
        "child": {"birth_date": "2026-11-06", "sex": "FEMALE", "birth_weight_grams": 2410,
                  "nicu_admission": True},
        "mother": {"phone": None},
        "hospital_id": "1467533928",
    }


@pytest.mark.parametrize(("change", "path", "problem"), [
    ({"dob": "13/45/2026"}, "child.birth_date", "date does not match the format %m/%d/%Y"),
    ({"sex": "x"}, "child.sex", "value is not in the lookup table"),
    ({"weight": "2.5kg"}, "child.birth_weight_grams", "expected a whole number"),
    ({"weight": "2410.5"}, "child.birth_weight_grams", "expected a whole number"),
    ({"nicu": "maybe"}, "child.nicu_admission", "expected yes/no, true/false or 1/0"),
    ({"recorded": "yesterday"}, "occurred_at", "time does not match the format "
                                               "%m/%d/%Y %H:%M"),
])
def test_a_value_that_does_not_convert_is_reported_by_field_without_the_value(
        change, path, problem):
    result = mapped({**ROW, **change})
    assert result.event is None
    assert result.problems == ((path, problem),)
    assert all(str(v) not in problem for v in change.values())


def test_every_bad_field_of_a_row_is_reported_at_once():
    result = mapped({**ROW, "dob": "x", "sex": "x"})
    assert [p for p, _ in result.problems] == ["child.birth_date", "child.sex"]


def test_missing_and_empty_values_are_left_out_unless_a_default_is_given():
    result = mapped({"mrn": "MPI-1", "weight": "  ", "phone": "   "})
    assert result.event == {"subject_id": "MPI-1", "mother": {"phone": None},
                            "hospital_id": "1467533928"}


def test_keep_empty_keeps_an_empty_string():
    result = mapped({"note": ""}, {"note": {"from": "note", "keep_empty": True}})
    assert result.event == {"note": ""}


def test_lookup_default_covers_unknown_values():
    fields = {"child.sex": {"from": "sex", "convert": [
        {"lookup": {"table": {"F": "FEMALE"}, "default": "UNDETERMINED"}}]}}
    assert mapped({"sex": "?"}, fields).event == {"child": {"sex": "UNDETERMINED"}}


def test_source_paths_reach_into_json_documents_and_lists():
    doc = {"patient": {"ids": [{"value": "MPI-9"}], "name": {"family": "Lee"}}}
    fields = {"subject_id": "patient.ids.0.value", "mother.last_name": "patient.name.family",
              "mother.first_name": "patient.name.given"}
    assert mapped(doc, fields).event == {"subject_id": "MPI-9",
                                         "mother": {"last_name": "Lee"}}


def test_passthrough_starts_from_the_record_and_fields_override():
    doc = {"subject_id": "MPI-1", "child": {"sex": "FEMALE"}}
    result = mapped(doc, {"child.sex": {"const": "MALE"}}, passthrough=True)
    assert result.event == {"subject_id": "MPI-1", "child": {"sex": "MALE"}}
    assert doc["child"]["sex"] == "FEMALE"


@pytest.fixture
def hook_module():
    module = types.ModuleType("handoff_test_hooks")

    def add_county(event, record):
        event["county_fips"] = "55025" if record.get("county") == "Dane" else "55000"

    def refuse_twins(event, record):
        if record.get("plurality") == "2":
            raise RecordProblem("child", "twins are exported separately")
        return {**event, "checked": True}

    def broken(event, record):
        raise KeyError(record["ssn"])

    module.add_county, module.refuse_twins, module.broken = add_county, refuse_twins, broken
    sys.modules[module.__name__] = module
    yield module.__name__
    del sys.modules[module.__name__]


def test_a_hook_edits_the_event_in_place_or_returns_a_new_one(hook_module):
    assert mapped({"mrn": "M", "county": "Dane"}, {"subject_id": "mrn"},
                  hook=f"{hook_module}:add_county").event == {"subject_id": "M",
                                                              "county_fips": "55025"}
    assert mapped({"mrn": "M"}, {"subject_id": "mrn"},
                  hook=f"{hook_module}:refuse_twins").event == {"subject_id": "M",
                                                                "checked": True}


def test_a_hook_rejects_a_record_with_a_reason(hook_module):
    result = mapped({"mrn": "M", "plurality": "2"}, {"subject_id": "mrn"},
                    hook=f"{hook_module}:refuse_twins")
    assert result.problems == (("child", "twins are exported separately"),)


def test_a_failing_hook_rejects_the_record_naming_the_error_class_only(hook_module):
    result = mapped({"mrn": "M", "ssn": "512-44-9031"}, {"subject_id": "mrn"},
                    hook=f"{hook_module}:broken")
    assert result.problems == (("<hook>", "the mapping hook raised KeyError"),)


@pytest.mark.parametrize(("fields", "spec", "message"), [
    ({"a": {"from": "x", "convert": ["shout"]}}, {}, "unknown converter 'shout'"),
    ({"a": {"from": "x", "convert": [{"date": 3}]}}, {}, "date needs a strptime format"),
    ({"a": {"from": "x", "const": 1}}, {}, "exactly one of 'from' or 'const'"),
    ({"a": {}}, {}, "exactly one of 'from' or 'const'"),
    ({"a..b": "x"}, {}, "not a dotted field path"),
    ({"a": {"from": "x", "colour": "red"}}, {}, "Extra inputs are not permitted"),
    ({"a": "x"}, {"hook": "no_such_module_here:fn"}, "cannot load it"),
])
def test_an_invalid_mapping_is_refused_when_loaded(fields, spec, message):
    with pytest.raises(MappingError, match=message):
        load_mapping({"event_type": "birth", "fields": fields, **spec})


def test_a_mapping_file_error_names_the_file(tmp_path):
    path = tmp_path / "births.yaml"
    path.write_text("event_type: birth\nfields:\n  a: {from: x, convert: [shout]}\n")
    with pytest.raises(MappingError, match=r"births\.yaml: fields\.a\.convert"):
        load_mapping(path)
