"""Errors as exceptions that carry the broker's problem details (RFC 9457).

Every refusal the broker answers becomes a `HandoffApiError` subclass named for what
happened, holding the `Problem` (`type`, `title`, `status`, `detail`, `errors`), so a
caller can branch on the class and show the detail. `retriable` says whether trying
again later can succeed (the client already retried those it could).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field of a refused event: `field` is a path like `mother.birth_date`
    or `events[3].child.sex`."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem document as the broker sent it."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: tuple[FieldError, ...] = ()

    @classmethod
    def from_json(cls, status: int, body: object) -> Problem:
        """A problem from a response body; a body that is not a problem document (a
        proxy's error page) still gives a problem naming the status."""
        if not isinstance(body, Mapping):
            return cls("about:blank", f"HTTP {status}", status, "the answer was not a "
                       "problem document")
        if "error_code" in body and "type" not in body:   # the registry's Confluent body
            return cls(f"/registry-errors/{body.get('error_code')}", "Registry error",
                       status, str(body.get("message", "")))
        raw_errors = body.get("errors")
        errors = tuple(FieldError(str(e.get("field", "")), str(e.get("message", "")))
                       for e in (raw_errors if isinstance(raw_errors, list) else [])
                       if isinstance(e, Mapping))
        instance = body.get("instance")
        return cls(str(body.get("type", "about:blank")), str(body.get("title", "")),
                   int(str(body.get("status", status))), str(body.get("detail", "")),
                   None if instance is None else str(instance), errors)


class HandoffClientError(Exception):
    """Root of every error `handoff.client` raises."""

    retriable = False


class HandoffApiError(HandoffClientError):
    """The broker refused or failed a request; `problem` says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.status} {problem.title}: {problem.detail}")
        self.problem = problem

    @property
    def errors(self) -> tuple[FieldError, ...]:
        return self.problem.errors


class BadRequest(HandoffApiError):
    """400: malformed JSON, batch, Avro payload or cursor."""


class Unauthenticated(HandoffApiError):
    """401: no key, or an unknown, expired or revoked one."""


class Forbidden(HandoffApiError):
    """403: the key lacks the role, or the resource is another agency's."""


class NotFound(HandoffApiError):
    """404: unknown event type, subscription, subject or route."""


class Conflict(HandoffApiError):
    """409: for example a schema that breaks its subject's compatibility."""


class PayloadTooLarge(HandoffApiError):
    """413: the body or batch is over its limit."""


class InvalidRequest(HandoffApiError):
    """422: an event or request does not match its schema; `errors` names each field."""


class RateLimited(HandoffApiError):
    """429: the key spent its rate limit (after the client's own retries)."""

    retriable = True


class Unavailable(HandoffApiError):
    """5xx: the broker could not complete the request (after the client's retries)."""

    retriable = True


class TransportError(HandoffClientError):
    """The broker could not be reached, or the connection broke (after retries)."""

    retriable = True


_BY_STATUS: dict[int, type[HandoffApiError]] = {
    400: BadRequest, 401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: PayloadTooLarge, 422: InvalidRequest, 429: RateLimited,
}


def error_for(status: int, body: object) -> HandoffApiError:
    """The exception for an error answer."""
    cls = _BY_STATUS.get(status) or (Unavailable if status >= 500 else HandoffApiError)
    return cls(Problem.from_json(status, body))
