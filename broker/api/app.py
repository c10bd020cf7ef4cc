"""The FastAPI application: routes, problem+json errors, authentication and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.telemetry import TelemetryConfig

from broker.api import (
    routes_admin,
    routes_audit,
    routes_connectors,
    routes_dead_letters,
    routes_events,
    routes_explain,
    routes_fhir,
    routes_linkage,
    routes_ops,
    routes_registry,
    routes_registry_config,
    routes_reports,
    routes_subscriptions,
)
from broker.api.auth import BearerKeyMiddleware
from broker.api.body_guard import BodyCaps, BodyGuard, check_declared_body
from broker.api.dependencies import ApiParts
from broker.api.docs_ui import install_docs
from broker.api.key_lapse import KeyWatch
from broker.api.metrics_middleware import RequestMetricsMiddleware
from broker.api.openapi import install_openapi
from broker.api.problems import install_problem_handlers
from broker.api.publish_fast import PublishFastPath
from broker.api.rate_limit import RateLimitMiddleware, limits
from broker.api.request_ids import RequestIdMiddleware
from broker.auth import Principal
from broker.delivery.fanout import FanOut
from broker.roles import Roles

DESCRIPTION = """
Handoff moves events between human-services agencies under their data sharing
agreements, families' consent and the privacy laws that cover the data.

Authenticate with `Authorization: Bearer <API key>`, or HTTP basic auth with the key as
the user name. Errors are RFC 9457 problem details (`application/problem+json`); the
schema registry (`/v1/registry`) answers errors as Confluent Schema Registry does.
"""


NO_TELEMETRY: TelemetryConfig = {
    "tracing": False, "metrics": False, "logs": False, "operation_spans": False,
    "auto_configure": False,
}
"""FastAPI's own OpenTelemetry, off whatever the environment configures. It would record
validation failures and unhandled exceptions with their messages and stack traces (which
can carry personal data) to any exporter set up globally, and looking the providers up
costs every request; Handoff has its own metrics and an error log that never logs a
message."""


API_ROUTES = (routes_events, routes_explain, routes_registry, routes_registry_config,
              routes_audit, routes_admin, routes_connectors, routes_fhir, routes_linkage,
              routes_reports)
"""Served by a process with the `api` role."""
DELIVERY_ROUTES = (routes_dead_letters, routes_subscriptions)
"""Served by a process with the `delivery` role."""


def route_modules(roles: Roles) -> list[ModuleType]:
    """The route modules a process with `roles` serves; every process serves
    `/healthz`, `/readyz` and `/metrics`."""
    modules: list[ModuleType] = []
    if roles.api:
        modules += API_ROUTES
    if roles.delivery:
        modules += DELIVERY_ROUTES
    return [*modules, routes_ops]


def create_app(parts: ApiParts, *, lean_publish: bool = True) -> FastAPI:
    """The app for one process: the routes its roles serve, over the parts bootstrap
    built (`broker.bootstrap.build_broker(...).api`). With `lean_publish` (the default)
    the publish routes are answered by `broker.api.publish_fast`; without it, by
    FastAPI's routing, the same endpoints (tests compare the two)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Long polls and streams wait in threads of their own, so idle subscribers can
        # never starve publishers of worker threads.
        app.state.wait_limiter = anyio.CapacityLimiter(512)
        # One reader per delivery topic, shared by every stream and poll of the process.
        fallbacks = parts.metrics.stream_fallbacks
        app.state.fanout = FanOut(parts.feed, app.state.wait_limiter,
                                  on_fallback=lambda sub: fallbacks.labels(sub).inc())
        app.state.key_watch = KeyWatch(parts.keyring)
        try:
            yield
        finally:
            await app.state.key_watch.close()
            await app.state.fanout.close()

    # Every route first refuses a declared body over its cap, even one it never reads.
    app = FastAPI(title="Handoff", version="0.1.0", description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None, telemetry=NO_TELEMETRY,
                  dependencies=[Depends(check_declared_body)])
    app.state.parts = parts
    auditor = parts.auditor

    def on_refusal(request: Request, principal: Principal | None, status: int, why: str
                   ) -> None:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        auditor.access_refused(principal, request.method, route, status, why)

    app.state.on_refusal = on_refusal
    install_problem_handlers(app)
    for module in route_modules(parts.roles):
        app.include_router(module.router)
    install_openapi(app, parts.event_types)
    install_docs(app)
    for extend in parts.extensions:
        extend(app)
    # Innermost first: each add_middleware wraps the ones added before it.
    if lean_publish and routes_events in route_modules(parts.roles):
        app.add_middleware(PublishFastPath)
    app.add_middleware(BodyGuard, caps=BodyCaps.of(parts.settings))
    app.add_middleware(RateLimitMiddleware, **limits(parts.settings))
    app.add_middleware(BearerKeyMiddleware, keyring=parts.keyring)
    app.add_middleware(RequestMetricsMiddleware, metrics=parts.metrics)
    app.add_middleware(RequestIdMiddleware)
    return app
