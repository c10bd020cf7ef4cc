"""Publishing events: `POST /v1/events/{event_type}` and `...:batch`."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from broker.api import dependencies as deps
from broker.api.auth import require
from broker.api.body import parse_json, read_capped
from broker.api.body_guard import batch_cap
from broker.api.future_bridge import answered
from broker.api.problems import (
    AUTHENTICATED,
    ApiError,
    PayloadTooLarge,
    UnsupportedMediaType,
    problem_responses,
)
from broker.auth import Principal, Role
from broker.ingest.publisher import Publisher

AVRO = "application/vnd.handoff.avro"
INLINE_BATCH = 100
"""Batches of up to this many events are validated on the event loop (about 2 ms)."""

router = APIRouter(tags=["publish"], responses=problem_responses(
    *AUTHENTICATED, 400, 404, 413, 415, 503))

_EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            AVRO: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["events"],
            "properties": {"events": {"type": "array", "items": {"type": "object"}}},
        }}},
    }
}


class BadBatch(ApiError):
    status, slug, title = 400, "bad-batch", "Malformed batch"


@router.post("/v1/events/{event_type}:batch", status_code=202, openapi_extra=_BATCH_BODY,
             summary="Publish many events of one type, all or none")
async def publish_batch(
    event_type: str, request: Request,
    principal: Principal = Depends(require(Role.PUBLISH)),
    publisher: Publisher = Depends(deps.publisher),
) -> JSONResponse:
    # Refused before the body is read: the publisher decides who may publish what.
    publisher.authorize(principal, event_type)
    settings = deps.api_settings(request)
    if not request.headers.get("content-type", "application/json").startswith(
            "application/json"):
        raise UnsupportedMediaType("a batch is a JSON object {\"events\": [...]}")
    doc = parse_json(await read_capped(request, batch_cap(settings)))
    items = doc.get("events") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise BadBatch("send {\"events\": [...]} with at least one event")
    limit = settings.max_batch_events
    if len(items) > limit:
        raise PayloadTooLarge(f"a batch holds at most {limit} events; this one has "
                              f"{len(items)}")
    # Validating takes about 20 µs an event: a batch of up to `INLINE_BATCH` is validated
    # on the loop, like one event (cheaper than a thread hop and back); a larger one, or
    # one whose check reads state (the referral ledger), in a worker thread.
    if len(items) <= INLINE_BATCH and not publisher.reads_state(event_type):
        prepared = publisher.prepare_json(principal, event_type, items, True)
    else:
        prepared = await anyio.to_thread.run_sync(
            publisher.prepare_json, principal, event_type, items, True)
    placed = await answered(publisher.submit(principal, prepared, awaited=True),
                            lambda: deps.future_bridge(request))
    return JSONResponse({"accepted": [p.to_dict() for p in placed]}, status_code=202)


@router.post("/v1/events/{event_type}", status_code=202, openapi_extra=_EVENT_BODY,
             summary="Publish one event")
async def publish_event(
    event_type: str, request: Request,
    principal: Principal = Depends(require(Role.PUBLISH)),
    publisher: Publisher = Depends(deps.publisher),
) -> JSONResponse:
    publisher.authorize(principal, event_type)
    settings = deps.api_settings(request)
    body = await read_capped(request, settings.max_body_bytes)
    content_type = request.headers.get("content-type", "application/json").split(";")[0]
    # One event validates in tens of microseconds: cheaper inline than a thread hop,
    # unless its check reads state (a referral status: the referral ledger).
    if content_type == AVRO:
        prepare = lambda: publisher.prepare_wire(principal, event_type, body)  # noqa: E731
    elif content_type in ("application/json", ""):
        item = parse_json(body)
        prepare = lambda: publisher.prepare_json(  # noqa: E731
            principal, event_type, [item], False)
    else:
        raise UnsupportedMediaType(f"send application/json or {AVRO}")
    if publisher.reads_state(event_type):
        prepared = await anyio.to_thread.run_sync(prepare)
    else:
        prepared = prepare()
    (placed,) = await answered(publisher.submit(principal, prepared, awaited=True),
                               lambda: deps.future_bridge(request))
    return JSONResponse(placed.to_dict(), status_code=202)
