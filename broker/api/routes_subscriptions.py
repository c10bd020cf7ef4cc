"""Receiving permitted events: pull with a cursor (long poll) or a server-sent-event
stream, resumable with `Last-Event-ID`. Both read through the process's shared reader of
the subscription's delivery topic (`broker.delivery.fanout`)."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from typing import Any

import fastavro
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from broker.api import dependencies as deps
from broker.api.auth import key_lapsed, require
from broker.api.key_lapse import KeyWatch, lapse_of
from broker.api.ownership import owned_subscription
from broker.api.problems import AUTHENTICATED, NotAcceptable, problem_responses
from broker.auth import KeyRing, Principal, Role
from broker.config import ApiSettings
from broker.delivery.cursor import Cursor
from broker.delivery.fanout import OWN_WAIT_SECONDS, FanOut
from broker.delivery.feed import Delivery, DeliveryFeed
from broker.delivery.frames import json_page
from broker.policy_holder import LoadedPolicy

AVRO = "application/vnd.handoff.avro"
HEARTBEAT_SECONDS = 15.0

router = APIRouter(tags=["subscribe"],
                   responses=problem_responses(*AUTHENTICATED, 400, 404, 406))

# Avro responses are an object container file of these envelopes; `data` holds the view
# record in Confluent wire format, whose schema id resolves in the registry.
ENVELOPE_SCHEMA = fastavro.parse_schema({
    "type": "record", "name": "Delivery", "namespace": "org.handoff.delivery",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "decision_id", "type": "string"},
        {"name": "event_type", "type": "string"},
        {"name": "source", "type": "string"},
        {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "withheld", "type": {"type": "array", "items": "string"}},
        {"name": "obligations", "type": {"type": "array", "items": {"type": "map",
                                                                    "values": "string"}}},
        {"name": "cursor", "type": "string"},
        {"name": "schema_id", "type": "int"},
        {"name": "data", "type": "bytes"},
    ],
})


@router.get("/v1/subscriptions", summary="The caller's subscriptions")
def list_subscriptions(
    principal: Principal = Depends(require(Role.SUBSCRIBE)),
    policy: LoadedPolicy = Depends(deps.policy),
) -> dict[str, Any]:
    subs = [s for s in policy.bundle.subscriptions.values()
            if s.agency == principal.agency]
    return {"subscriptions": [
        {"id": s.id, "event_types": list(s.event_types), "purpose": s.purpose,
         "delivery": str(getattr(s.delivery, "mode", s.delivery))}
        for s in subs
    ]}


@router.get("/v1/subscriptions/{subscription_id}/events",
            summary="Pull permitted events after a cursor, waiting up to `wait` seconds")
async def pull(
    subscription_id: str, request: Request,
    after: str | None = Query(default=None, max_length=2000,
                              description="the `next` cursor of the previous response"),
    limit: int = Query(default=100, ge=1, le=1000),
    wait: float = Query(default=0, ge=0, le=300),
    principal: Principal = Depends(require(Role.SUBSCRIBE)),
    policy: LoadedPolicy = Depends(deps.policy),
    feed: DeliveryFeed = Depends(deps.feed),
    settings: ApiSettings = Depends(deps.api_settings),
    fanout: FanOut = Depends(deps.fanout),
    keyring: KeyRing = Depends(deps.keyring),
    watch: KeyWatch = Depends(deps.key_watch),
) -> Response:
    owned_subscription(request, policy.bundle, principal, subscription_id)
    avro = AVRO in request.headers.get("accept", "")
    if not avro and "accept" in request.headers and not _accepts_json(request):
        raise NotAcceptable(f"this endpoint serves application/json or {AVRO}")
    cursor = Cursor.parse(after, feed.partitions(subscription_id))
    wait = min(wait, settings.max_wait_seconds)
    hub = await fanout.hub(subscription_id)
    with hub.in_use(), watch.watching(principal) as wake:
        page = await hub.page(cursor, limit)
        deadline = time.monotonic() + wait
        # The wait ends early when the key stops being valid (broker.api.key_lapse).
        while not page.frames and (remaining := deadline - time.monotonic()) > 0:
            if (lapsed := lapse_of(keyring, principal)) is not None:
                raise key_lapsed(request, principal, lapsed.reason)
            await hub.wait(wake, min(remaining, OWN_WAIT_SECONDS))
            page = await hub.page(page.next, limit)
    if (lapsed := lapse_of(keyring, principal)) is not None:
        raise key_lapsed(request, principal, lapsed.reason)
    if avro:
        return Response(_container(page.deliveries), media_type=AVRO,
                        headers={"Handoff-Next-Cursor": str(page.next)})
    return Response(json_page(page.frames, page.next), media_type="application/json")


def _accepts_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(t in accept for t in ("application/json", "*/*", "application/*")) or not accept


def _container(deliveries: list[Delivery]) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, ENVELOPE_SCHEMA, [
        {"event_id": d.envelope.event_id, "decision_id": d.envelope.decision_id,
         "event_type": d.envelope.event_type, "source": d.envelope.source,
         "occurred_at": d.envelope.occurred_at_ms, "withheld": list(d.envelope.withheld),
         "obligations": [{k: str(v) for k, v in o.items()} for o in d.envelope.obligations],
         "cursor": d.cursor, "schema_id": d.schema_id, "data": d.wire}
        for d in deliveries
    ])
    return out.getvalue()


@router.get("/v1/subscriptions/{subscription_id}/stream",
            summary="Server-sent events; resume with the Last-Event-ID header",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream(
    subscription_id: str, request: Request,
    after: str | None = Query(default=None, max_length=2000),
    principal: Principal = Depends(require(Role.SUBSCRIBE)),
    policy: LoadedPolicy = Depends(deps.policy),
    feed: DeliveryFeed = Depends(deps.feed),
    fanout: FanOut = Depends(deps.fanout),
    keyring: KeyRing = Depends(deps.keyring),
    watch: KeyWatch = Depends(deps.key_watch),
) -> StreamingResponse:
    owned_subscription(request, policy.bundle, principal, subscription_id)
    resume = request.headers.get("last-event-id") or after
    cursor = Cursor.parse(resume, feed.partitions(subscription_id))
    hub = await fanout.hub(subscription_id)

    async def events() -> AsyncIterator[str]:
        yield ": connected\n\n"
        quiet_since = time.monotonic()
        # The hub hands out what it read, or an empty chunk when nothing came for a
        # heartbeat or the key watch woke the stream (its key lapsed).
        with watch.watching(principal) as wake:
            async for chunk in hub.follow(cursor, HEARTBEAT_SECONDS, wake):
                # Nothing is sent once the key stopped being valid (broker.api.key_lapse).
                if (lapsed := lapse_of(keyring, principal)) is not None:
                    key_lapsed(request, principal, lapsed.reason)
                    yield lapsed.to_sse()
                    return
                now = time.monotonic()
                if chunk:
                    quiet_since = now
                    yield chunk
                elif now - quiet_since >= HEARTBEAT_SECONDS:
                    quiet_since = now
                    yield ": keep-alive\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
