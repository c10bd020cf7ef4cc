"""`POST /v1/explain`: what a subscriber would receive for an event, and why, without
delivering anything.

Explain is no oracle: it decides with the consents in the request only (never the live
consent view), pseudonymises with a key made for the call (never the recipient's), and
every call is audited as `explain`, naming the key that asked, the subscription, the
event type and the outcome, never the event.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.api import dependencies as deps
from broker.api.auth import require
from broker.api.ownership import owned_subscription
from broker.api.problems import AUTHENTICATED, problem_responses
from broker.auditor import Auditor
from broker.auth import Principal, Role
from broker.clock import Clock
from broker.event_types import EventTypes
from broker.policy_holder import LoadedPolicy
from policy import PolicyEngine
from policy.explain import Explanation, InvalidConsentError
from policy.explain import explain as explain_event
from schemas.errors import RecordValidationError
from schemas.jsonform import record_from_json

router = APIRouter(tags=["policy"], responses=problem_responses(*AUTHENTICATED, 400, 404))


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: str = Field(max_length=100)
    source: str = Field(max_length=200, description="publishing agency id")
    subscription: str = Field(max_length=200)
    event: dict[str, Any] = Field(description="the event as JSON")
    consents: list[dict[str, Any]] = Field(
        default_factory=list, max_length=1000,
        description="consent records to decide with (the live consent view is not used, "
        "so explain reveals nothing about real people's consents)")
    at: int | None = Field(
        default=None, description="decision time, ms since the epoch; defaults to the time "
        "of the request. Each consent given counts from this time.")
    consents_recorded_by: str | None = Field(
        default=None, max_length=200,
        description="the agency taken to have recorded the consents (default: source)")


@router.post("/v1/explain", summary="Explain the decision for one event and subscription")
def explain(
    body: ExplainRequest, request: Request,
    principal: Principal = Depends(
        require(Role.ADMIN, Role.AUDITOR, Role.SUBSCRIBE)),
    policy: LoadedPolicy = Depends(deps.policy),
    event_types: EventTypes = Depends(deps.event_types),
    clock: Clock = Depends(deps.clock),
    auditor: Auditor = Depends(deps.auditor),
) -> dict[str, Any]:
    owned_subscription(request, policy.bundle, principal, body.subscription,
                       any_agency_for=(Role.ADMIN, Role.AUDITOR))
    outcome = "invalid"
    try:
        explained = _explain(body, policy, event_types, clock)
        outcome = explained.decision.outcome
    finally:
        # Every call, answered or refused as invalid, names its caller in the audit log.
        auditor.explained(principal, body.subscription, body.event_type, body.source,
                          outcome)
    return {"decision": explained.decision.to_dict(), "view": explained.view,
            "pseudonyms": PSEUDONYMS}


PSEUDONYMS = ("made with a key for this call alone: they match no delivery and no other "
              "explain")


def _explain(body: ExplainRequest, policy: LoadedPolicy, event_types: EventTypes,
             clock: Clock) -> Explanation:
    registered = event_types.latest(body.event_type)
    record = record_from_json(registered.schema.schema, body.event)
    consent_schema = event_types.latest("consent").schema.schema
    # The decision time: the request's `at`, else now; each consent counts from then.
    at = body.at if body.at is not None else clock()
    consents = []
    for i, consent in enumerate(body.consents):
        try:
            consents.append((record_from_json(consent_schema, consent), at))
        except RecordValidationError as exc:
            raise RecordValidationError(
                [(f"consents[{i}].{p}", m) for p, m in exc.problems]) from None
    # The policy in force, with a pseudonym key made for this call: explain can never
    # reproduce the pseudonyms a recipient receives, so it cannot be used to guess
    # which identifier stands behind one. Other transforms (a ZIP cut to three digits,
    # a masked value) need no secret: anyone can apply them to a value they hold.
    engine = PolicyEngine(policy.bundle, policy.engine.catalog, secrets.token_bytes(32))
    try:
        return explain_event(engine, body.event_type, registered.version, record,
                             body.source, body.subscription, at_ms=at, consents=consents,
                             consents_recorded_by=body.consents_recorded_by)
    except InvalidConsentError as exc:
        raise RecordValidationError([(f"consents[{exc.index}]", str(exc))]) from None
