"""`POST /v1/explain`: what a subscriber would receive for an event, and why, without
delivering anything."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.api.auth import refuse, require
from broker.api.problems import AUTHENTICATED, NotFound, problem_responses
from broker.auditing import now_ms
from broker.auth import Principal, Role
from broker.runtime import Runtime
from policy import ConsentView
from schemas.errors import RecordValidationError
from schemas.jsonform import record_from_json, record_to_json

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
    at: int | None = Field(default=None, description="decision time, ms since the epoch")
    consents_recorded_by: str | None = Field(
        default=None, max_length=200,
        description="the agency taken to have recorded the consents (default: source)")


@router.post("/v1/explain", summary="Explain the decision for one event and subscription")
def explain(
    body: ExplainRequest, request: Request,
    principal: Principal = Depends(
        require(Role.ADMIN, Role.AUDITOR, Role.SUBSCRIBE)),
) -> dict[str, Any]:
    runtime: Runtime = request.app.state.runtime
    bundle = runtime.policy.bundle
    sub = bundle.subscriptions.get(body.subscription)
    if sub is None:
        raise NotFound(f"no subscription '{body.subscription}'")
    privileged = principal.has(Role.ADMIN) or principal.has(Role.AUDITOR)
    if not privileged and sub.agency != principal.agency:
        raise refuse(request, principal,
                     f"subscription '{body.subscription}' belongs to another agency")
    registered = runtime.event_types.latest(body.event_type)
    record = record_from_json(registered.schema.schema, body.event)
    consent_schema = runtime.event_types.latest("consent").schema.schema
    view = ConsentView()
    at = body.at if body.at is not None else now_ms()
    for i, consent in enumerate(body.consents):
        try:
            view.apply(record_from_json(consent_schema, consent), at,
                       body.consents_recorded_by or body.source)
        except RecordValidationError as exc:
            raise RecordValidationError(
                [(f"consents[{i}].{p}", m) for p, m in exc.problems]) from None
    decision = runtime.policy.engine.decide(
        body.event_type, registered.version, record, body.source, body.subscription, view, at)
    result: dict[str, Any] = {"decision": decision.to_dict()}
    if decision.view is not None:
        schema = runtime.policy.engine.view_schema(body.subscription, body.event_type,
                                                   registered.version)
        result["view"] = record_to_json(schema, decision.view)
    else:
        result["view"] = None
    return result
