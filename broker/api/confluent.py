"""Confluent Schema Registry's error body for the registry routes.

Confluent clients (`SchemaRegistryClient` in confluent-kafka, the Java serializers)
read `{"error_code": 40401, "message": "..."}` and show the message; a problem document
reaches them as an error without one. So every answer of a route built with
`ConfluentRoute` that is not a success, including refusals by `require(...)` and
request validation, is written in Confluent's shape with Confluent's codes. The rest
of the API keeps problem+json.

Unexpected errors are left to the app's handlers: they are logged there.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from broker.api.body import MalformedJson
from broker.api.problems import (
    ApiError,
    AuthenticationRequired,
    Forbidden,
    PayloadTooLarge,
    RefusedBeforeBody,
)
from broker.errors import LogUnavailableError
from schemas.errors import (
    IncompatibleSchemaError,
    SchemaError,
    UnknownSchemaError,
    UnknownSchemaIdError,
    UnknownSubjectError,
    UnknownVersionError,
)

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(ApiError):
    """A registry error with its Confluent code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def invalid_version(version: object) -> RegistryError:
    return RegistryError(422, 42202, f"The specified version '{version}' is not a valid "
                         "version id. Allowed values are between [1, 2^31-1] and the "
                         "string \"latest\"")


def not_permitted(message: str) -> RegistryError:
    return RegistryError(422, 42205, message)


# The first class an error is an instance of decides (status, error_code).
_CODES: tuple[tuple[type[BaseException], int, int], ...] = (
    (AuthenticationRequired, 401, 40101),
    (Forbidden, 403, 40301),
    (UnknownSubjectError, 404, 40401),
    (UnknownVersionError, 404, 40402),
    (UnknownSchemaIdError, 404, 40403),
    (UnknownSchemaError, 404, 40401),
    (IncompatibleSchemaError, 409, 409),
    (SchemaError, 422, 42201),
    (MalformedJson, 400, 400),
    (PayloadTooLarge, 413, 413),
    (LogUnavailableError, 503, 50001),
)


def error_response(status: int, code: int, message: str) -> JSONResponse:
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="handoff", Bearer realm="handoff"'
    if status == 503:
        headers["Retry-After"] = "1"
    return JSONResponse({"error_code": code, "message": message}, status_code=status,
                        media_type=MEDIA_TYPE, headers=headers)


def confluent_error(exc: Exception) -> Response | None:
    """Confluent's answer for an error, or None for an unexpected one."""
    if isinstance(exc, RefusedBeforeBody):
        # Refused as the body was about to be read (broker.api.body_guard): a caller
        # without a usable key or the role, or a body over the route's cap.
        exc = exc.error
    if isinstance(exc, RegistryError):
        return error_response(exc.status, exc.code, exc.detail)
    for cls, status, code in _CODES:
        if isinstance(exc, cls):
            return error_response(status, code, str(exc))
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.status, exc.detail)
    if isinstance(exc, RequestValidationError):
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                           for e in exc.errors())
        return error_response(422, 422, f"Unprocessable entity: {fields}")
    if isinstance(exc, StarletteHTTPException):
        return error_response(exc.status_code, exc.status_code, str(exc.detail))
    return None


class ConfluentRoute(APIRoute):
    """A route answering errors in Confluent Schema Registry's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                response = confluent_error(exc)
                if response is None:
                    raise
                return response

        return answer


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "integer",
                                  "description": "Confluent's code, e.g. 40401, 42201"},
                   "message": {"type": "string"}},
}
_WHEN = {
    400: "Malformed JSON", 401: "No key, or an unknown, expired or revoked one (40101)",
    403: "The key lacks the role (40301)",
    404: "Unknown subject (40401), version (40402) or schema (40403)",
    409: "The schema breaks the subject's compatibility level", 413: "Body over its limit",
    422: "Invalid schema (42201), version (42202), level (42203), or not permitted (42205)",
    503: "The event log is unavailable (50001); retry after `Retry-After`",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for Confluent error bodies with these statuses."""
    return {status: {"description": _WHEN.get(status, "Error"),
                     "content": {MEDIA_TYPE: {"schema": ERROR_SCHEMA}}}
            for status in statuses}
