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

import threading
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from broker.api.auth import refuse, require
from broker.api.problems import AUTHENTICATED, ApiError, Conflict, NotFound, problem_responses
from broker.auditing import now_ms
from broker.auth import Principal, Role
from broker.delivery.dead_letters import DeadLetter, DeadLetterQueue
from broker.delivery.webhook_state import EndpointState, WebhookStateStore
from broker.runtime import Runtime
from policy.model import Subscription

router = APIRouter(tags=["webhooks"],
                   responses=problem_responses(*AUTHENTICATED, 400, 404, 409))
_lock = threading.Lock()


class ReplayRequest(BaseModel):
    ids: list[str] | None = Field(
        default=None, max_length=10_000,
        description="dead letter ids to replay; omit to replay every pending one")


def _stores(request: Request) -> tuple[WebhookStateStore, DeadLetterQueue]:
    state = request.app.state
    with _lock:
        if not hasattr(state, "webhook_state"):
            runtime: Runtime = state.runtime
            state.webhook_state = WebhookStateStore(runtime.log)
            state.dead_letter_queue = DeadLetterQueue(runtime.log)
    store: WebhookStateStore = state.webhook_state
    store.catch_up()
    return store, state.dead_letter_queue


def _webhook_subscription(request: Request, principal: Principal, sub_id: str
                          ) -> Subscription:
    runtime: Runtime = request.app.state.runtime
    sub = runtime.policy.bundle.subscriptions.get(sub_id)
    if sub is None:
        raise NotFound(f"no subscription '{sub_id}'")
    if sub.agency != principal.agency and not principal.has(Role.ADMIN):
        raise refuse(request, principal, f"subscription '{sub_id}' belongs to another agency")
    if sub.delivery.mode != "webhook":
        raise NotFound(f"subscription '{sub_id}' is delivered by {sub.delivery.mode}, not "
                       "by webhook; it has no dead letters")
    return sub


def _letter_json(request: Request, letter: DeadLetter, replayed: dict[int, Any],
                 with_data: bool) -> dict[str, Any]:
    doc = letter.summary()
    mark = replayed.get(letter.id)
    doc["replayed_at_ms"] = mark.at_ms if mark else None
    if with_data:
        runtime: Runtime = request.app.state.runtime
        doc["delivery"] = runtime.feed.decode(letter.record).to_json()
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
) -> dict[str, Any]:
    sub = _webhook_subscription(request, principal, subscription_id)
    state, queue = _stores(request)
    letters = queue.read(subscription_id, after, limit)
    replayed = state.replayed(subscription_id)
    with_data = principal.agency == sub.agency
    shown = [d for d in letters if not (pending and d.id in replayed)]
    return {
        "dead_letters": [_letter_json(request, d, replayed, with_data) for d in shown],
        "next": str(letters[-1].id if letters else after),
    }


@router.post("/v1/subscriptions/{subscription_id}/dead-letters:replay", status_code=202,
             summary="Deliver dead letters again, behind what is queued")
def replay_dead_letters(
    subscription_id: str, request: Request,
    body: ReplayRequest | None = Body(default=None),
    principal: Principal = Depends(require(Role.SUBSCRIBE, Role.ADMIN)),
) -> JSONResponse:
    sub = _webhook_subscription(request, principal, subscription_id)
    runtime: Runtime = request.app.state.runtime
    state, queue = _stores(request)
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
    runtime.auditor.deliveries_replayed(principal, subscription_id, sub.agency, [
        (_subject(d), d.envelope.source, d.envelope.event_id, d.envelope.decision_id, d.id)
        for d in letters])
    queue.replay(subscription_id, letters)
    state.mark_replayed(subscription_id, [d.id for d in letters], now_ms(), principal.key_id)
    return JSONResponse({"replayed": [str(d.id) for d in letters]}, status_code=202)


@router.get("/v1/subscriptions/{subscription_id}/webhook",
            summary="The webhook endpoint's status and retry in progress")
def webhook_status(
    subscription_id: str, request: Request,
    principal: Principal = Depends(require(Role.SUBSCRIBE, Role.ADMIN)),
) -> dict[str, Any]:
    sub = _webhook_subscription(request, principal, subscription_id)
    runtime: Runtime = request.app.state.runtime
    state, queue = _stores(request)
    endpoint = state.endpoint(subscription_id)
    cursor = state.cursor(subscription_id, runtime.feed.partitions(subscription_id))
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
) -> dict[str, Any]:
    sub = _webhook_subscription(request, principal, subscription_id)
    runtime: Runtime = request.app.state.runtime
    state, _ = _stores(request)
    previous = state.endpoint(subscription_id)
    if previous.status == "healthy":
        raise Conflict(f"the webhook of '{subscription_id}' is already enabled and healthy")
    runtime.auditor.webhook_enabled(principal, subscription_id, previous.status,
                                    sub.delivery.url)
    state.put_endpoint(subscription_id, EndpointState("healthy", sub.delivery.url,
                                                      now_ms(), "enabled by operator"))
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
