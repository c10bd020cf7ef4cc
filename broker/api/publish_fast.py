"""Publishing without the framework's per-request work the publish routes do not need.

`POST /v1/events/{event_type}` and `POST /v1/events/{event_type}:batch` are answered here,
as pure ASGI inside the broker's middleware (request id, metrics, authentication, rate
limit, body guard: each still sees the request as it does any other) and before
FastAPI's routing. The routes stay declared in `broker.api.routes_events`, so
`/openapi.json` describes them exactly; this runs their very endpoint functions with the
dependencies they have (the app's `check_declared_body`, then `require(Role.PUBLISH)`,
then `deps.publisher`), in that order, and answers errors with the app's own problem
handlers. What it leaves out is what FastAPI does for every request whatever the route
needs: matching the path against every route of the app, solving dependencies
generically (query parameters, an exit stack per request) and the exception
middleware's wrapping of `send`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.api import dependencies as deps
from broker.api import routes_events
from broker.api.auth import RoleRequirement
from broker.api.body_guard import check_declared_body
from broker.api.problems import on_handoff_error, on_http_error
from broker.auth import Principal
from broker.ingest.publisher import Publisher
from schemas.errors import HandoffError

PREFIX = "/v1/events/"
BATCH = ":batch"

Endpoint = Callable[[str, Request, Principal, Publisher], Awaitable[Response]]


class PublishFastPath:
    """Answer the publish routes directly; pass every other request on to `app`."""

    def __init__(self, app: ASGIApp, router: APIRouter = routes_events.router) -> None:
        self.app = app
        self.single = _route(router, PREFIX + "{event_type}")
        self.batch = _route(router, PREFIX + "{event_type}" + BATCH)
        self.require_single = _requirement(self.single)
        self.require_batch = _requirement(self.batch)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        # What Starlette would match: `[^/]+` after the prefix, the batch route first.
        # Anything else (a root path to strip, a trailing slash) goes the usual way.
        if (scope["type"] != "http" or scope["method"] != "POST"
                or not path.startswith(PREFIX) or scope.get("root_path")):
            await self.app(scope, receive, send)
            return
        event_type = path[len(PREFIX):]
        if not event_type or "/" in event_type:
            await self.app(scope, receive, send)
            return
        if len(event_type) > len(BATCH) and event_type.endswith(BATCH):
            event_type = event_type[:-len(BATCH)]
            route, require = self.batch, self.require_batch
            endpoint: Endpoint = routes_events.publish_batch
        else:
            route, require = self.single, self.require_single
            endpoint = routes_events.publish_event
        scope["route"] = route
        scope["path_params"] = {"event_type": event_type}
        request = Request(scope, receive, send)
        try:
            await check_declared_body(request)
            principal = await require(request)
            publisher = await deps.publisher(request)
            response = await endpoint(event_type, request, principal, publisher)
        except StarletteHTTPException as exc:   # a refusal before the body was read
            response = await on_http_error(request, exc)
        except HandoffError as exc:
            response = await on_handoff_error(request, exc)
        await response(scope, receive, send)


def _route(router: APIRouter, path: str) -> APIRoute:
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == path and "POST" in (route.methods or ()):
            return route
    raise LookupError(f"no POST route {path} in {router}")


def _requirement(route: APIRoute) -> RoleRequirement:
    """The `require(...)` dependency the route declares (the body guard reads the same)."""
    for dependant in route.dependant.dependencies:
        if isinstance(dependant.call, RoleRequirement):
            return dependant.call
    raise LookupError(f"route {route.path} declares no role requirement")
