"""Counts requests by route template (never the raw path, which may hold ids)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.metrics import Metrics


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

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
            route = _template(scope)
            self.metrics.http_requests.labels(scope["method"], route, str(status)).inc()
            if status in (401, 403):
                self.metrics.access_refused.labels(str(status)).inc()


def _template(scope: Scope) -> str:
    # The router records the matched route in the scope; unmatched paths stay anonymous.
    return str(getattr(scope.get("route"), "path", "unmatched"))
