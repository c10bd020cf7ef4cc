"""A webhook subscription's dead letters and endpoint status.

- `GET /v1/subscriptions/{id}/dead-letters`: what could not be delivered, and why.
- `POST /v1/subscriptions/{id}/dead-letters:replay`: put dead letters back for delivery
  (all pending ones, or the ids given), audited one entry per delivery.
- `GET /v1/subscriptions/{id}/webhook`: the endpoint's status (healthy, failing,
  disabled), the retry in progress, how many dead letters wait.
- `POST /v1/subscriptions/{id}/webhook:enable`: turn a disabled or failing endpoint back
  on, audited.

Allowed to the subscribing agency (key with the subscribe role) and to admins. Only the
subscriber sees the delivered data in a dead letter; an admin sees ids and reasons.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from broker.api import dependencies as deps
from broker.api.auth import require
from broker.api.ownership import owned_subscription
from broker.api.problems import AUTHENTICATED, ApiError, Conflict, NotFound, problem_responses
from broker.auditor import Auditor
from broker.auth import Principal, Role
from broker.clock import Clock
from broker.delivery.dead_letters import DeadLetter, DeadLetterQueue
from broker.delivery.feed import DeliveryFeed
from broker.delivery.webhook_state import EndpointState, WebhookStateStore
from broker.policy_holder import LoadedPolicy
from policy.model import Subscription

router = APIRouter(tags=["webhooks"],
                   responses=problem_responses(*AUTHENTICATED, 400, 404, 409))


class ReplayRequest(BaseModel):
    ids: list[str] | None = Field(
        default=None, max_length=10_000,
        description="dead letter ids to replay; omit to replay every pending one")


def _webhook_subscription(request: Request, policy: LoadedPolicy, principal: Principal,
                          sub_id: str) -> Subscription:
    sub = owned_subscription(request, policy.bundle, principal, sub_id,
                             any_agency_for=(Role.ADMIN,))
    if sub.delivery.mode != "webhook":
        raise NotFound(f"subscription '{sub_id}' is delivered by {sub.delivery.mode}, not "
                       "by webhook; it has no dead letters")
    return sub


def _letter_json(feed: DeliveryFeed, letter: DeadLetter, replayed: dict[int, Any],
                 with_data: bool) -> dict[str, Any]:
    doc = letter.summary()
    mark = replayed.get(letter.id)
    doc["replayed_at_ms"] = mark.at_ms if mark else None
    if with_data:
        doc["delivery"] = feed.decode(letter.record).to_json()
        doc["delivery"].pop("cursor", None)
    return doc


@router.get("/v1/subscriptions/{subscription_id}/dead-letters",
            summary="Deliveries given up on after the last webhook attempt")
def list_dead_letters(
    subscription_id: str, request: Request,
    after: int = Query(default=-1, ge=-1, description="the `next` of the previous page"),
    limit: int = Query(default=100, ge=1, le=1000),
    pending: bool = Query(default=False, description="only those not replayed yet"),
    principal: Principal = Depends(require(Role.SUBSCRIBE, Role.ADMIN)),
    policy: LoadedPolicy = Depends(deps.policy),
    state: WebhookStateStore = Depends(deps.webhook_state),
    queue: DeadLetterQueue = Depends(deps.dead_letter_queue),
    feed: DeliveryFeed = Depends(deps.feed),
) -> dict[str, Any]:
    sub = _webhook_subscription(request, policy, principal, subscription_id)
    letters = queue.read(subscription_id, after, limit)
    replayed = state.replayed(subscription_id)
    with_data = principal.agency == sub.agency
    shown = [d for d in letters if not (pending and d.id in replayed)]
    return {
        "dead_letters": [_letter_json(feed, d, replayed, with_data) for d in shown],
        "next": str(letters[-1].id if letters else after),
    }


@router.post("/v1/subscriptions/{subscription_id}/dead-letters:replay", status_code=202,
             summary="Deliver dead letters again, behind what is queued")
def replay_dead_letters(
    subscription_id: str, request: Request,
    body: ReplayRequest | None = Body(default=None),
    principal: Principal = Depends(require(Role.SUBSCRIBE, Role.ADMIN)),
    policy: LoadedPolicy = Depends(deps.policy),
    state: WebhookStateStore = Depends(deps.webhook_state),
    queue: DeadLetterQueue = Depends(deps.dead_letter_queue),
    auditor: Auditor = Depends(deps.auditor),
    clock: Clock = Depends(deps.clock),
) -> JSONResponse:
    sub = _webhook_subscription(request, policy, principal, subscription_id)
    replayed = state.replayed(subscription_id)
    if body is None or body.ids is None:
        letters = [d for d in _all(queue, subscription_id) if d.id not in replayed]
    else:
        wanted = _parse_ids(body.ids)
        letters = queue.get(subscription_id, wanted)
        missing = sorted(set(wanted) - {d.id for d in letters})
        if missing:
            raise NotFound(f"no dead letter {', '.join(map(str, missing))} for "
                           f"subscription '{subscription_id}'; nothing was replayed")
    # Audit first: a replay without its audit record must never happen, while an
    # audited replay that then fails to append is visible and harmless.
    auditor.deliveries_replayed(principal, subscription_id, sub.agency, [
        (_subject(d), d.envelope.source, d.envelope.event_id, d.envelope.decision_id, d.id)
        for d in letters])
    queue.replay(subscription_id, letters)
    state.mark_replayed(subscription_id, [d.id for d in letters], clock(), principal.key_id)
    return JSONResponse({"replayed": [str(d.id) for d in letters]}, status_code=202)


@router.get("/v1/subscriptions/{subscription_id}/webhook",
            summary="The webhook endpoint's status and retry in progress")
def webhook_status(
    subscription_id: str, request: Request,
    principal: Principal = Depends(require(Role.SUBSCRIBE, Role.ADMIN)),
    policy: LoadedPolicy = Depends(deps.policy),
    state: WebhookStateStore = Depends(deps.webhook_state),
    queue: DeadLetterQueue = Depends(deps.dead_letter_queue),
    feed: DeliveryFeed = Depends(deps.feed),
) -> dict[str, Any]:
    sub = _webhook_subscription(request, policy, principal, subscription_id)
    endpoint = state.endpoint(subscription_id)
    cursor = state.cursor(subscription_id, feed.partitions(subscription_id))
    replayed = state.replayed(subscription_id)
    pending = sum(1 for d in _all(queue, subscription_id) if d.id not in replayed)
    return {
        "subscription": subscription_id, "url": sub.delivery.url,
        "status": endpoint.status, "since_ms": endpoint.since_ms or None,
        "reason": endpoint.reason,
        "retry": ({"failed_attempts": cursor.attempts,
                   "next_attempt_ms": cursor.next_attempt_ms} if cursor.attempts else None),
        "dead_letters_pending": pending,
    }


@router.post("/v1/subscriptions/{subscription_id}/webhook:enable",
             summary="Turn a disabled or failing webhook endpoint back on")
def enable_webhook(
    subscription_id: str, request: Request,
    principal: Principal = Depends(require(Role.SUBSCRIBE, Role.ADMIN)),
    policy: LoadedPolicy = Depends(deps.policy),
    state: WebhookStateStore = Depends(deps.webhook_state),
    auditor: Auditor = Depends(deps.auditor),
    clock: Clock = Depends(deps.clock),
) -> dict[str, Any]:
    sub = _webhook_subscription(request, policy, principal, subscription_id)
    previous = state.endpoint(subscription_id)
    if previous.status == "healthy":
        raise Conflict(f"the webhook of '{subscription_id}' is already enabled and healthy")
    auditor.webhook_enabled(principal, subscription_id, previous.status, sub.delivery.url)
    state.put_endpoint(subscription_id, EndpointState("healthy", sub.delivery.url,
                                                      clock(), "enabled by operator"))
    return {"subscription": subscription_id, "status": "healthy",
            "previous_status": previous.status}


def _all(queue: DeadLetterQueue, sub_id: str) -> list[DeadLetter]:
    out: list[DeadLetter] = []
    after = -1
    while True:
        page = queue.read(sub_id, after, 1000)
        if not page:
            return out
        out.extend(page)
        after = page[-1].id


def _parse_ids(ids: list[str]) -> list[int]:
    bad = [i for i in ids if not (i.isdigit() and len(i) <= 19)]
    if bad:
        raise ApiError("dead letter ids are the 'id' values listed by GET .../dead-letters")
    return [int(i) for i in ids]


def _subject(letter: DeadLetter) -> str | None:
    key = letter.record.key
    return key.decode() if key and key.startswith(b"sp_") else None
