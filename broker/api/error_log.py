"""Logging an error the broker did not expect, without the personal data it may carry.

The log line names the request id, the method, the route template and the traceback as
frames (file, line, function, the line of code) and exception types. Never the
exception's message, local values or the request body: any of them may hold personal
data (an exception raised while converting a value often quotes it).
"""

from __future__ import annotations

import logging
import traceback

from starlette.types import Scope

from broker.errors import storage_full

REQUEST_ID = "handoff.request_id"
"""Where the request's id is kept in `scope["state"]`."""

log = logging.getLogger("handoff.api")


def request_id_of(scope: Scope) -> str | None:
    found = scope.get("state", {}).get(REQUEST_ID)
    return str(found) if found else None


def frames_only(exc: BaseException) -> str:
    """The traceback of `exc`, and of the exceptions it was raised from or while
    handling, with no exception message: frames and exception types only."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        stack = traceback.StackSummary.extract(
            traceback.walk_tb(current.__traceback__), capture_locals=False)
        kind = type(current)
        parts.append("Traceback (most recent call last):\n" + "".join(stack.format())
                     + f"{kind.__module__}.{kind.__qualname__} (message not logged)")
        current = current.__cause__ or current.__context__
    return "\nwhich was raised from or while handling:\n".join(parts)


def log_unexpected(scope: Scope, exc: BaseException) -> None:
    """Log an unexpected error of a request: its id, method, route template and frames.
    A full disk is expected, and said in one line: the operator's cue to free space."""
    route = getattr(scope.get("route"), "path", "unmatched")
    if storage_full(exc):
        log.warning("request %s: %s %s answered 503: a disk the broker writes to is full",
                    request_id_of(scope) or "-", scope.get("method", "-"), route)
        return
    log.error("request %s: %s %s failed with an unexpected error\n%s",
              request_id_of(scope) or "-", scope.get("method", "-"), route,
              frames_only(exc))
