"""RFC 9457 problem details: every error the API returns, mapped in one table.

Problem `type` URIs are relative (`/problems/<slug>`); docs/api.md lists them. Details
name fields and problems, never the values sent, which may be personal data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from broker.api.error_log import log_unexpected, request_id_of
from broker.audit.errors import AuditQueryError
from broker.consent_recording import ConsentRefusedError
from broker.delivery.cursor import InvalidCursor
from broker.errors import BrokerError, LogUnavailableError, storage_full
from broker.ingest.publisher import (
    EventTooLargeError,
    NotPermittedToPublishError,
    UnknownEventTypeError,
)
from broker.linking.service import LinkageReadOnlyError
from broker.referral_recording import NotAPartyError, ReferralRefusedError
from linkage.clk import ClkError
from linkage.errors import (
    IdentityError,
    LinkageError,
    ReviewStateError,
    UnknownPersonError,
    UnknownRecordError,
    UnknownReviewError,
)
from linkage.sqlite_index import IndexUnavailableError
from schemas.errors import (
    DecodeError,
    HandoffError,
    IncompatibleSchemaError,
    RecordValidationError,
    SchemaError,
    UnknownSchemaError,
)

PROBLEM_JSON = "application/problem+json"


class ApiError(BrokerError):
    """An error raised by an endpoint on purpose, with its own status."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = dict(extra or {})


class AuthenticationRequired(ApiError):
    status, slug, title = 401, "unauthenticated", "Authentication required"


class Forbidden(ApiError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(ApiError):
    status, slug, title = 404, "not-found", "Not found"


class PayloadTooLarge(ApiError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(ApiError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class NotAcceptable(ApiError):
    status, slug, title = 406, "not-acceptable", "Not acceptable"


class Conflict(ApiError):
    status, slug, title = 409, "conflict", "Conflict"


class RefusedBeforeBody(StarletteHTTPException):
    """An `ApiError` raised as a body is about to be read or while it is read
    (`broker.api.body_guard`). FastAPI lets an `HTTPException` out of its body parsing
    untouched, so the refusal keeps its own problem."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.status, error.detail)
        self.error = error


# Order matters: the first class an error is an instance of decides its response.
PROBLEM_TABLE: tuple[tuple[type[BaseException], int, str, str], ...] = (
    (ConsentRefusedError, 403, "consent-refused", "The agency may not record this consent"),
    (NotAPartyError, 403, "not-a-party", "The agency may not record this referral status"),
    (ReferralRefusedError, 422, "referral-refused", "The referral cannot take this update"),
    (RecordValidationError, 422, "invalid-event", "The event does not match its schema"),
    (DecodeError, 400, "undecodable-payload", "The payload could not be decoded"),
    (UnknownSchemaError, 404, "unknown-schema", "Unknown schema"),
    (IncompatibleSchemaError, 409, "incompatible-schema", "Incompatible schema"),
    (SchemaError, 422, "invalid-schema", "Invalid schema"),
    (LogUnavailableError, 503, "log-unavailable", "The event log is unavailable"),
    (AuditQueryError, 422, "invalid-request", "Invalid request"),
    (InvalidCursor, 400, "invalid-cursor", "Invalid cursor"),
    (UnknownEventTypeError, 404, "not-found", "Not found"),
    (NotPermittedToPublishError, 403, "forbidden", "Not allowed"),
    (EventTooLargeError, 413, "payload-too-large", "Payload too large"),
    (UnknownRecordError, 404, "unknown-record", "Unknown agency record"),
    (UnknownPersonError, 404, "unknown-person", "Unknown person"),
    (UnknownReviewError, 404, "unknown-review", "Unknown review item"),
    (ReviewStateError, 409, "review-closed", "The review item is not open"),
    (IdentityError, 422, "unusable-identity", "The identity cannot be matched"),
    (ClkError, 422, "invalid-clk", "The encoding is not a CLK of the agreed length"),
    (LinkageReadOnlyError, 503, "linkage-read-only",
     "Clerical changes are made by the linking process"),
    (IndexUnavailableError, 503, "linkage-unavailable", "The person index is unavailable"),
    (LinkageError, 409, "linkage-conflict", "The change does not fit the links as they are"),
)


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "`/problems/<slug>`; see docs/api.md"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string", "description": "on 5xx answers: the id the error "
                       "was logged under (also the `X-Request-Id` header)"},
        "errors": {"type": "array", "items": {
            "type": "object", "properties": {"field": {"type": "string"},
                                             "message": {"type": "string"}}}},
    },
}
_WHEN = {
    400: "Malformed request (JSON, batch, Avro payload or cursor)",
    401: "No key, or an unknown, expired or revoked one",
    403: "The key lacks the role, or the resource is another agency's",
    404: "Unknown resource",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Body or batch over its limit",
    415: "Unsupported media type",
    422: "Invalid request or event",
    429: "Rate limit exceeded; retry after `Retry-After` seconds",
    503: "Unavailable; retry after `Retry-After` seconds",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting problem+json answers with these statuses."""
    retry = {"Retry-After": {"schema": {"type": "integer"},
                             "description": "seconds to wait before retrying"}}
    return {
        status: {
            "description": _WHEN.get(status, "Problem"),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
            **({"headers": retry} if status in (429, 503) else {}),
        }
        for status in statuses
    }


AUTHENTICATED = (401, 403, 413, 422, 429)
"""Statuses any endpoint behind a key can answer (413: a body over the route's cap)."""


def problem(
    status: int, slug: str, title: str, detail: str, instance: str | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status,
                            "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="handoff"'
    if status in (429, 503):
        headers["Retry-After"] = str(extra.get("retry_after", 1))
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


STORAGE_FULL_RETRY_SECONDS = 10


def problem_for(exc: BaseException, instance: str | None = None) -> JSONResponse | None:
    """The problem for an error the API expects, or None for one it does not (which
    `server_error` answers, once it is logged)."""
    if isinstance(exc, ApiError):
        return problem(exc.status, exc.slug, exc.title, exc.detail, instance, **exc.extra)
    if storage_full(exc):
        return None
    for cls, status, slug, title in PROBLEM_TABLE:
        if isinstance(exc, cls):
            extra: dict[str, Any] = {}
            if isinstance(exc, RecordValidationError | EventTooLargeError):
                extra["errors"] = [{"field": p, "message": m} for p, m in exc.problems]
            return problem(status, slug, title, str(exc), instance, **extra)
    return None


def server_error(exc: BaseException, instance: str | None, request_id: str | None
                 ) -> JSONResponse:
    """The answer to an error no table entry covers: 503 with `Retry-After` when a disk
    the broker writes to is full or the error says a retry may succeed, else 500. Both
    give the request id the error was logged under, never the error's message."""
    rid = {"request_id": request_id} if request_id else {}
    if storage_full(exc):
        return problem(503, "storage-full", "Storage full",
                       "a disk the broker writes to is full; retry after Retry-After "
                       "seconds (an event accepted before is then recognised as a "
                       "duplicate)", instance, retry_after=STORAGE_FULL_RETRY_SECONDS, **rid)
    if isinstance(exc, HandoffError) and exc.retriable:
        return problem(503, "unavailable", "Temporarily unavailable",
                       "the broker could not complete the request; retry after "
                       "Retry-After seconds", instance, **rid)
    return problem(500, "internal", "Internal error",
                   f"unexpected error; it has been logged under request id {request_id}",
                   instance, **rid)


def json_refusal(exc: BaseException) -> str:
    """Why a body is not usable JSON: where, or which limit, never the text itself."""
    if isinstance(exc, RecursionError):
        return "the JSON is nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"the body is not valid JSON at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "the body is not valid UTF-8"
    if "digits" in str(exc):
        return "a number in the JSON has too many digits (at most 4300)"
    return "the body is not valid JSON"


def instance_of(request: Request) -> str | None:
    """The `instance` of a problem: the matched route's template, never the raw path,
    which may carry a person's identifier (`/v1/audit/disclosures/{subject_id}`)."""
    route = request.scope.get("route")
    return getattr(route, "path", None)


def _methods_of(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first
    route's when several routes share a path)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.PARTIAL:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _named_safely(error: Mapping[str, Any], body: Any) -> tuple[Any, ...]:
    """An error's location, with a key the caller made up (an unknown field) named by
    its position in its object rather than by its text, which may be personal data."""
    loc = tuple(error["loc"])
    if error.get("type") != "extra_forbidden" or not loc:
        return loc
    parent: Any = body
    for part in loc[1:-1] if loc[0] == "body" else loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            parent = None
            break
    keys = list(parent) if isinstance(parent, Mapping) else []
    where = f"<key {keys.index(loc[-1]) + 1}>" if loc[-1] in keys else "<unknown key>"
    return (*loc[:-1], where)


async def on_handoff_error(request: Request, exc: Exception) -> JSONResponse:
    """The answer to a `HandoffError` an endpoint raised."""
    instance = instance_of(request)
    answer = problem_for(exc, instance)
    if answer is not None:
        return answer
    log_unexpected(request.scope, exc)
    return server_error(exc, instance, request_id_of(request.scope))


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """The answer to an `HTTPException` (a refusal before the body, FastAPI's own)."""
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, RefusedBeforeBody):
        return problem(exc.error.status, exc.error.slug, exc.error.title,
                       exc.error.detail, instance_of(request), **exc.error.extra)
    slug = {404: "not-found", 405: "method-not-allowed",
            413: "payload-too-large"}.get(exc.status_code, "http-error")
    title, detail = str(exc.detail), str(exc.detail)
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
        # FastAPI's answer to a body it could not parse as JSON.
        slug, title = "malformed-json", "Malformed JSON"
        detail = json_refusal(exc.__cause__)
    response = problem(exc.status_code, slug, title, detail, instance_of(request))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(_methods_of(request))
    return response


def install_problem_handlers(app: FastAPI) -> None:
    async def on_request_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": ".".join(str(p) for p in _named_safely(e, exc.body)),
             "message": e["msg"]}
            for e in exc.errors()
        ]
        return problem(422, "invalid-request", "Invalid request",
                       "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                       instance_of(request), errors=errors)

    app.add_exception_handler(HandoffError, on_handoff_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
