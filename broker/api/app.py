"""The FastAPI application: routes, problem+json errors, authentication and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request

from broker.api import (
    routes_admin,
    routes_audit,
    routes_dead_letters,
    routes_events,
    routes_explain,
    routes_ops,
    routes_registry,
    routes_subscriptions,
)
from broker.api.auth import BearerKeyMiddleware
from broker.api.metrics_middleware import RequestMetricsMiddleware
from broker.api.problems import install_problem_handlers
from broker.api.rate_limit import RateLimitMiddleware, limits
from broker.auth import Principal
from broker.runtime import Runtime

DESCRIPTION = """
Handoff moves events between human-services agencies under their data sharing
agreements, families' consent and the privacy laws that cover the data.

Authenticate with `Authorization: Bearer <API key>`. Errors are RFC 9457 problem
details (`application/problem+json`).
"""


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Long polls and streams wait in threads of their own, so idle subscribers can
        # never starve publishers of worker threads.
        app.state.wait_limiter = anyio.CapacityLimiter(512)
        yield

    app = FastAPI(title="Handoff", version="0.1.0", description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.runtime = runtime

    def on_refusal(request: Request, principal: Principal | None, status: int, why: str
                   ) -> None:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        runtime.auditor.access_refused(principal, request.method, route, status, why)

    app.state.on_refusal = on_refusal
    install_problem_handlers(app)
    app.include_router(routes_dead_letters.router)
    for module in (routes_events, routes_subscriptions, routes_explain, routes_registry,
                   routes_audit, routes_ops, routes_admin):
        app.include_router(module.router)
    app.add_middleware(RateLimitMiddleware, **limits(runtime.settings.api))
    app.add_middleware(BearerKeyMiddleware, keyring=runtime.keyring)
    app.add_middleware(RequestMetricsMiddleware, metrics=runtime.metrics)
    return app
