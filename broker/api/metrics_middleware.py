"""Counts requests by route template (never the raw path, which may hold ids)."""

from __future__ import annotations

from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.metrics import Metrics

MAX_CHILDREN = 4096
"""Counters kept at hand, by (method, route template, status); past this many (a scan
of made-up methods) the cache starts over."""


class _Incrementable(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # A labelled child looked up once: `labels(...)` costs more than `inc()`.
        self._children: dict[tuple[str, str, int], _Incrementable] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            key = (scope["method"], _template(scope), status)
            child = self._children.get(key)
            if child is None:
                if len(self._children) >= MAX_CHILDREN:
                    self._children.clear()
                child = self._children[key] = self.metrics.http_requests.labels(
                    key[0], key[1], str(status))
            child.inc()
            if status in (401, 403):
                self.metrics.access_refused.labels(str(status)).inc()


def _template(scope: Scope) -> str:
    # The router records the matched route in the scope; unmatched paths stay anonymous.
    return str(getattr(scope.get("route"), "path", "unmatched"))
