"""Request ids, and the last word on errors no handler answered.

Every response carries `X-Request-Id`, a random id the broker makes for the request; one
a client sends is ignored, since it could carry anything into the logs. An error that
escaped every handler is logged (`broker.api.error_log`: request id, route and frames,
never a message or the body) and answered with a 500 problem giving the request id, or
503 with `Retry-After` when a disk the broker writes to is full.
"""

from __future__ import annotations

import os
import random

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.api.error_log import REQUEST_ID, log_unexpected
from broker.api.problems import server_error

HEADER = b"x-request-id"

_ids = random.Random(os.urandom(32))
"""Request ids: 128 random bits as 32 hex digits, as uuid4().hex gave, from a generator
seeded once from the operating system. An id names a request in the logs and is no
secret; drawing it without a system call per request saves the call and, more, the
interpreter lock it lets go of (the thread then waits to get it back). A forked child
seeds its own, so no two processes draw the same ids."""
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


class RequestIdMiddleware:
    """Outermost of the broker's middleware: gives each request its id, puts it in the
    `X-Request-Id` response header, and answers what escaped every handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"{_ids.getrandbits(128):032x}"
        scope.setdefault("state", {})[REQUEST_ID] = request_id
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()),
                                      (HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # noqa: BLE001 - the top of a request: logged just below
            log_unexpected(scope, exc)
            if started:
                # Half a response is out; the server closes the connection. Not raised
                # on, so nothing below logs the exception's message.
                return
            response = server_error(exc, getattr(scope.get("route"), "path", None),
                                    request_id)
            await response(scope, receive, sending)
