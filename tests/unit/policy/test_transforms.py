"""Transforms: their YAML spellings, which field types take them, how several combine,
what they do to values, and pseudonyms per recipient."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from policy_cases import AT, CATALOG, agreement, bundle_with, engine_for, example
from pydantic import ValidationError

from policy import ConsentView, Transform
from policy.transforms import applicable, pseudonymiser, strictest, value_transform

BIRTH = CATALOG.get("birth")


@pytest.mark.parametrize(("spec", "expected"), [
    ("drop", Transform(kind="drop")),
    ("zip3", Transform(kind="generalise", granularity="zip3")),
    ("mask", Transform(kind="mask", keep_last=4)),
    ("pseudonymise", Transform(kind="pseudonymise")),
    ("pseudonymize", Transform(kind="pseudonymise")),
    ({"generalise": "month"}, Transform(kind="generalise", granularity="month")),
    ({"generalize": "year"}, Transform(kind="generalise", granularity="year")),
    ({"mask": {"keep_last": 2}}, Transform(kind="mask", keep_last=2)),
    ({"mask": 0}, Transform(kind="mask", keep_last=0)),
    ({"pseudonymise": {"scope": "shared:statewide-evaluation"}},
     Transform(kind="pseudonymise", scope="shared:statewide-evaluation")),
    ({"pseudonymise": {"scope": "recipient"}}, Transform(kind="pseudonymise", scope="recipient")),
])
def test_transform_spellings(spec: Any, expected: Transform) -> None:
    assert Transform.model_validate(spec) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("zip5", "unknown transform 'zip5'"),
    ("generalise", "generalise needs a granularity"),
    ({"generalise": "week"}, "generalise takes month, year or zip3"),
    ({"mask": {"keep_last": -1}}, "keep_last must be a whole number"),
    ({"mask": {"keep": 2}}, "mask takes only keep_last"),
    ({"pseudonymise": {"scope": "statewide"}}, "scope is 'recipient' or 'shared:<name>'"),
    ({"drop": True, "mask": 2}, "a transform is a word"),
])
def test_bad_transform_spellings_say_what_is_wrong(spec: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Transform.model_validate(spec)


@pytest.mark.parametrize(("spec", "path", "ok"), [
    ({"generalise": "month"}, "child.birth_date", True),
    ({"generalise": "year"}, "occurred_at", True),
    ({"generalise": "month"}, "mother.zip", False),
    ("zip3", "mother.zip", True),
    ("zip3", "child.birth_weight_grams", False),
    ("mask", "mother.phone", True),
    ("mask", "child.sex", False),
    ("pseudonymise", "subject_id", True),
    ("pseudonymise", "child.birth_weight_grams", True),
    ("pseudonymise", "child.birth_date", False),
    ("pseudonymise", "child.nicu_admission", False),
    ("drop", "child.sex", True),
])
def test_which_fields_take_which_transform(spec: Any, path: str, ok: bool) -> None:
    assert applicable(Transform.model_validate(spec), BIRTH.field(path)) is ok


@pytest.mark.parametrize(("specs", "expected"), [
    ([], None),
    (["mask", "drop"], "drop"),
    (["mask", "pseudonymise", {"generalise": "month"}], "pseudonymise"),
    ([{"generalise": "month"}, {"generalise": "year"}], "generalise:year"),
    ([{"mask": {"keep_last": 4}}, {"mask": {"keep_last": 2}}], "mask:last2"),
    (["mask", "zip3"], "generalise:zip3"),
    ([{"pseudonymise": {"scope": "shared:a"}}, "pseudonymise"], "pseudonymise:shared:a"),
    ([{"pseudonymise": {"scope": "shared:a"}}, {"pseudonymise": {"scope": "shared:b"}}],
     "pseudonymise"),
    ([{"pseudonymise": {"scope": "shared:a"}}, {"pseudonymise": {"scope": "recipient"}}],
     "pseudonymise"),
])
def test_strictest_transform_wins(specs: list[Any], expected: str | None) -> None:
    result = strictest([Transform.model_validate(s) for s in specs])
    assert (result.label() if result else None) == expected


@pytest.mark.parametrize(("spec", "value", "expected"), [
    ({"generalise": "month"}, dt.date(2026, 11, 6), "2026-11"),
    ({"generalise": "year"}, dt.date(1995, 5, 16), "1995"),
    ({"generalise": "month"}, dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC), "2026-01"),
    ("zip3", "53703", "537"),
    ("zip3", "53703-1234", "537"),
    ("mask", "608-555-0142", "********0142"),
    ({"mask": {"keep_last": 4}}, "0142", "****"),
    ({"mask": {"keep_last": 0}}, "abc", "***"),
    ({"generalise": "month"}, None, None),
    ("mask", None, None),
    ("pseudonymise", None, None),
])
def test_transform_values(spec: Any, value: Any, expected: Any) -> None:
    assert value_transform(Transform.model_validate(spec), b"k")(value) == expected


def test_pseudonym_format_is_p_and_32_hex() -> None:
    assert re.fullmatch(r"p_[0-9a-f]{32}", pseudonymiser(b"k")("MPI-0048213") or "")


# -- pseudonyms through the engine --------------------------------------------------------


def eval_agreement(agreement_id: str, recipient: str, scope: str | None = None
                   ) -> dict[str, Any]:
    spec: Any = {"pseudonymise": {"scope": scope}} if scope else "pseudonymise"
    return agreement(agreement_id, "county-general", recipient, "program_evaluation",
                     "birth", ["event_id", {"subject_id": spec}])


def pseudonyms(*agreements: dict[str, Any], key: bytes = b"k1") -> dict[str, str]:
    engine = engine_for(bundle_with(agreements), key)
    out = {}
    for a in agreements:
        decision = engine.decide("birth", 1, example("birth"), "county-general", a["id"],
                                 ConsentView(), AT)
        assert decision.view is not None
        out[a["id"]] = decision.view["subject_id"]
    return out


def test_pseudonyms_differ_across_recipients_and_are_stable_for_one() -> None:
    both = [eval_agreement("to-eval", "state-evaluation"), eval_agreement("to-ma", "medicaid")]
    first, again = pseudonyms(*both), pseudonyms(*both)
    assert first == again
    assert first["to-eval"] != first["to-ma"]
    assert all(v.startswith("p_") and "MPI" not in v for v in first.values())


def test_pseudonyms_depend_on_the_key() -> None:
    one = [eval_agreement("to-eval", "state-evaluation")]
    assert pseudonyms(*one, key=b"k1") != pseudonyms(*one, key=b"k2")


def test_a_shared_scope_links_two_named_agreements() -> None:
    shared = pseudonyms(eval_agreement("to-eval", "state-evaluation", "shared:statewide"),
                        eval_agreement("to-ma", "medicaid", "shared:statewide"))
    assert shared["to-eval"] == shared["to-ma"]


# -- agreement and rule transforms together ----------------------------------------------


@pytest.mark.parametrize(("grant_spec", "rule_spec", "expected"), [
    ({"generalise": "month"}, {"generalise": "year"}, "transformed:generalise:year"),
    ({"generalise": "year"}, {"generalise": "month"}, "transformed:generalise:year"),
    (None, {"generalise": "month"}, "transformed:generalise:month"),
    ({"generalise": "month"}, "drop", "withheld"),
    # A rule's transform that does not fit the field's type withholds the field.
    (None, "zip3", "withheld"),
])
def test_rule_and_agreement_transforms_combine(grant_spec: Any, rule_spec: Any,
                                               expected: str) -> None:
    entry: Any = {"child.birth_date": grant_spec} if grant_spec else "child.birth_date"
    deal = agreement("a", "county-general", "hv-nfp", "care_coordination", "birth",
                     ["event_id", entry])
    rule = {"id": "test.dates", "citation": "test", "when": {"tags": ["identifier.quasi"],
                                                              "source": "any"},
            "then": {"transform": rule_spec}}
    engine = engine_for(bundle_with([deal], extra_rules=[rule]))
    field = engine.decide("birth", 1, example("birth"), "county-general", "a", ConsentView(),
                          AT).field("child.birth_date")
    got = field.status if field.status != "transformed" else f"transformed:{field.transform}"
    assert got == expected
    assert "test.dates" in field.rule_ids
