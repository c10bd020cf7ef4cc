"""`policy.explain`: the one explain the CLI and the API share. The caller says when the
decision is made and from when each consent counts."""

from __future__ import annotations

import pytest

from policy import PolicyEngine
from policy.explain import InvalidConsentError, explain
from tests.unit.policy.policy_cases import AT, CATALOG, DEMO, KEY, example, grant

ENGINE = PolicyEngine(DEMO, CATALOG, pseudonym_key=KEY)
BIRTH_VERSION = CATALOG.get("birth").version


def explain_birth(subscription: str = "hv-births", **kwargs):
    return explain(ENGINE, "birth", BIRTH_VERSION, example("birth"), "county-general",
                   subscription, **kwargs)


def test_a_permit_comes_with_the_view_as_json_and_its_schema() -> None:
    explained = explain_birth(at_ms=AT)
    assert explained.decision.outcome == "permit"
    assert explained.view is not None and explained.view_schema is not None
    assert explained.view["subject_id"] == example("birth")["subject_id"]
    assert "ssn" not in explained.view["mother"]
    assert {f["name"] for f in explained.view_schema["fields"]} >= {"subject_id", "mother"}


def test_a_consent_counts_only_from_the_time_the_caller_gives_it() -> None:
    before = explain_birth(at_ms=AT, consents=[(grant(), AT - 1)])
    after = explain_birth(at_ms=AT, consents=[(grant(), AT + 1)])
    assert before.decision.field("child.birth_weight_grams").status == "released"
    assert after.decision.field("child.birth_weight_grams").status == "withheld"


def test_the_decision_time_decides_which_agreement_is_in_force() -> None:
    long_before = AT - 10 * 365 * 86_400_000
    explained = explain_birth(at_ms=long_before)
    assert explained.decision.outcome == "deny"
    assert explained.decision.decision_time_ms == long_before
    assert explained.view is None and explained.view_schema is None


def test_an_unusable_consent_is_named_by_its_index() -> None:
    broken = {k: v for k, v in grant().items() if k != "consent_id"}
    with pytest.raises(InvalidConsentError) as raised:
        explain_birth(at_ms=AT, consents=[(grant(), AT - 1), (broken, AT - 1)])
    assert raised.value.index == 1
