"""Properties that must hold for any agreement, rule and consent (hypothesis).

- adding a rule never releases more fields;
- removing a consent never releases more fields;
- what is released always lies inside the agreement's allowed fields.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_cases import AT, CATALOG, agreement, bundle_with, engine_for, example, grant, ms

from policy import ConsentView, Transform
from policy.transforms import applicable

pytestmark = pytest.mark.slow

BIRTH = CATALOG.get("birth")
PATHS = list(BIRTH.paths)
SOURCES = ["county-general", "vital-records"]
RECIPIENTS = {"hv-nfp": "home_visiting", "medicaid": "medicaid",
              "state-evaluation": "evaluator", "cw-hotline": "child_welfare"}
PURPOSES = ["care_coordination", "program_evaluation", "birth_match", "payment", "treatment"]
TAGS = ["identifier.direct", "identifier.quasi", "health", "benefits", "sud", "child_welfare"]
TRANSFORMS = ["drop", "pseudonymise", "mask", "zip3", {"generalise": "month"},
              {"generalise": "year"}]

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


def fits(transform: Any, path: str) -> bool:
    return applicable(Transform.model_validate(transform), BIRTH.field(path))


@st.composite
def agreements(draw: st.DrawFn) -> dict[str, Any]:
    fields: list[Any] = []
    for path in draw(st.lists(st.sampled_from(PATHS), unique=True, min_size=1)):
        choices = [t for t in TRANSFORMS if fits(t, path)]
        transform = draw(st.none() | st.sampled_from(choices))
        fields.append(path if transform is None else {path: transform})
    return agreement(
        "deal", draw(st.sampled_from(SOURCES)), draw(st.sampled_from(sorted(RECIPIENTS))),
        draw(st.sampled_from(PURPOSES)), "birth", fields,
        scope=draw(st.sampled_from(["field", "record"])),
        consent_required=draw(st.booleans()))


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    effect = draw(st.sampled_from(["permit", "deny", "require_consent", "permit_purposes",
                                   "transform"]))
    then: Any = effect
    if effect == "require_consent":
        then = {"require_consent": {"naming": draw(st.sampled_from(
            ["recipient", "recipient_or_kind"]))}}
    elif effect == "permit_purposes":
        then = {"permit_purposes": draw(st.lists(st.sampled_from(PURPOSES), min_size=1,
                                                 unique=True))}
    elif effect == "transform":
        then = {"transform": draw(st.sampled_from(TRANSFORMS))}
    tags = draw(st.just(["*"]) | st.lists(st.sampled_from(TAGS), min_size=1, unique=True))
    when: dict[str, Any] = {"tags": tags, "source": draw(st.sampled_from(["any", "covered"]))}
    if draw(st.booleans()):
        when["purposes"] = draw(st.lists(st.sampled_from(PURPOSES), min_size=1, unique=True))
    return {"id": "prop.extra", "citation": "property test", "when": when, "then": then}


@st.composite
def consent_records(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=0, max_value=3))
    records = []
    for n in range(count):
        recipients = draw(st.lists(st.sampled_from(
            [*RECIPIENTS, *(f"kind:{k}" for k in RECIPIENTS.values())]), min_size=1,
            unique=True))
        categories = draw(st.just(["*"]) | st.lists(st.sampled_from(TAGS), unique=True))
        records.append(grant(f"C-{n}", recipients=recipients, categories=categories,
                             purposes=draw(st.lists(st.sampled_from(PURPOSES), min_size=1,
                                                    unique=True))))
    return records


def released(deal: dict[str, Any], records: list[dict[str, Any]],
             extra_rules: list[dict[str, Any]] | None = None) -> set[str]:
    engine = engine_for(bundle_with([deal], extra_rules=extra_rules or []))
    view = ConsentView()
    for record in records:
        view.apply(record, ms("2026-01-01"), deal["source"])
    decision = engine.decide("birth", 1, example("birth"), deal["source"], deal["id"], view,
                             AT)
    out = set(decision.released) | set(decision.transformed)
    if decision.view is not None:
        assert out == {p for p in out if p in PATHS}
    return out


def allowed(deal: dict[str, Any]) -> set[str]:
    return {f if isinstance(f, str) else next(iter(f)) for f in deal["fields"]}


@PROPERTY_SETTINGS
@given(deal=agreements(), records=consent_records(), rule=rules())
def test_adding_a_rule_never_releases_more(deal: dict[str, Any],
                                           records: list[dict[str, Any]],
                                           rule: dict[str, Any]) -> None:
    assert released(deal, records, [rule]) <= released(deal, records)


@PROPERTY_SETTINGS
@given(deal=agreements(), records=consent_records(), data=st.data())
def test_removing_a_consent_never_releases_more(deal: dict[str, Any],
                                                records: list[dict[str, Any]],
                                                data: st.DataObject) -> None:
    if not records:
        return
    dropped = data.draw(st.integers(min_value=0, max_value=len(records) - 1))
    fewer = records[:dropped] + records[dropped + 1:]
    assert released(deal, fewer) <= released(deal, records)


@PROPERTY_SETTINGS
@given(deal=agreements(), records=consent_records())
def test_released_fields_are_inside_the_agreement(deal: dict[str, Any],
                                                  records: list[dict[str, Any]]) -> None:
    assert released(deal, records) <= allowed(deal)
