"""Plans that project alike share one projection function, so a router can tell two
subscriptions' views of one event are equal without projecting and comparing them."""

from __future__ import annotations

import dataclasses

from policy_cases import AT, DEMO, KEY, engine_for, example

from policy import ConsentView, Decision, PolicyEngine


def with_copy_of(subscription: str, copy: str) -> PolicyEngine:
    """The demo bundle with another subscription of the same agency, alike in all but id."""
    original = DEMO.subscriptions[subscription]
    bundle = dataclasses.replace(DEMO, subscriptions={
        **DEMO.subscriptions, copy: original.model_copy(update={"id": copy})})
    return engine_for(bundle, KEY)


def decide(engine: PolicyEngine, subscription: str) -> Decision:
    return engine.decide("birth", 1, example("birth"), "county-general", subscription,
                         ConsentView(), AT)


def test_subscriptions_of_one_agency_released_alike_share_one_projection() -> None:
    engine = with_copy_of("hv-births", "hv-births-copy")
    original, copy = decide(engine, "hv-births"), decide(engine, "hv-births-copy")
    assert original.plan.project is not None
    assert copy.plan.project is original.plan.project
    assert copy.view == original.view


def test_subscriptions_released_differently_keep_their_own_projection() -> None:
    engine = with_copy_of("hv-births", "hv-births-copy")
    hv, evaluation = decide(engine, "hv-births"), decide(engine, "eval-births")
    assert hv.plan.project is not evaluation.plan.project
    assert hv.view != evaluation.view


def test_pseudonyms_for_another_recipient_are_another_projection() -> None:
    """The same fields pseudonymised for two agencies are different values: a copy of a
    subscription and its agreement for another agency never shares the projection."""
    original = DEMO.subscriptions["eval-births"]
    agreement = DEMO.agreements["cgh-eval-births"]
    bundle = dataclasses.replace(
        DEMO,
        subscriptions={**DEMO.subscriptions, "medicaid-births": original.model_copy(
            update={"id": "medicaid-births", "agency": "medicaid"})},
        agreements={**DEMO.agreements, "cgh-medicaid-births": agreement.model_copy(
            update={"id": "cgh-medicaid-births", "recipient": "medicaid"})})
    engine = engine_for(bundle, KEY)
    mine, theirs = decide(engine, "eval-births"), decide(engine, "medicaid-births")
    assert mine.plan.outcome == theirs.plan.outcome == "permit"
    assert mine.plan.transformed and mine.plan.transformed == theirs.plan.transformed
    assert theirs.plan.project is not mine.plan.project
    assert theirs.view != mine.view
