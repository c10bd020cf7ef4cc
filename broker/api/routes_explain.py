"""`POST /v1/explain`: what a subscriber would receive for an event, and why, without
delivering anything."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.api import dependencies as deps
from broker.api.auth import require
from broker.api.ownership import owned_subscription
from broker.api.problems import AUTHENTICATED, problem_responses
from broker.auth import Principal, Role
from broker.clock import Clock
from broker.event_types import EventTypes
from broker.policy_holder import LoadedPolicy
from policy.explain import InvalidConsentError
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
) -> dict[str, Any]:
    owned_subscription(request, policy.bundle, principal, body.subscription,
                       any_agency_for=(Role.ADMIN, Role.AUDITOR))
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
    try:
        explained = explain_event(policy.engine, body.event_type, registered.version, record,
                                  body.source, body.subscription, at_ms=at,
                                  consents=consents,
                                  consents_recorded_by=body.consents_recorded_by)
    except InvalidConsentError as exc:
        raise RecordValidationError([(f"consents[{exc.index}]", str(exc))]) from None
    return {"decision": explained.decision.to_dict(), "view": explained.view}
