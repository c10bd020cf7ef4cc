"""Authenticate before any body is read; cap every body before it is parsed.

Pure ASGI middleware, inside authentication (which only works out who is calling) and
the rate limit, and outside every route. It watches the request's `receive`: the first
call, made by whoever is about to read the body (FastAPI parsing a model, a route
reading the body itself), happens after routing and before a byte of the body is read;
for a request declaring a body over the smallest cap, the first of that call and the
route's start (`check_declared_body`, a dependency of every route of the app), so a
route that never reads its body (a policy reload) refuses it too rather than run while
the body waits unsent. At that moment

1. a route that needs a role (its endpoint depends on `require(...)`) refuses a caller
   without a usable credential (401) or without the role (403), with the same problem
   and `access_refused` audit record its dependency would give, and
2. a body declared (`Content-Length`) larger than the route's cap is refused (413; an
   authenticated caller's body larger than every route's cap before routing);

after it, every body is counted as it streams in, and the read that goes past the cap
fails with 413. An answer given while a body is left unread closes the connection, so
the server stops reading it.

The caps: `api.max_body_bytes` (default 1 MiB) for every route, and the exceptions in
`BodyCaps.of` for routes that need more (a batch of events).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.api.auth import PRINCIPAL, RoleRequirement, admit
from broker.api.problems import ApiError, PayloadTooLarge, RefusedBeforeBody, problem_for
from broker.auth import Role
from broker.config import ApiSettings

BATCH_BODY_FACTOR = 16
"""A batch body may be this many times `api.max_body_bytes` (each of its events is still
held to `api.max_body_bytes` once encoded)."""

FORM_SLACK = 16_384
"""Room for a multipart form's other fields and boundaries around an uploaded file."""

EARLY_CHECK = "handoff.body_check"
"""Scope key of the check a request declaring a large body is put to before its route
runs (`check_declared_body`)."""


@dataclass(frozen=True)
class BodyCaps:
    """How large a body each route accepts, in bytes."""

    default: int
    by_route: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(method, route template) -> cap, for routes that differ from `default`."""

    @classmethod
    def of(cls, api: ApiSettings) -> BodyCaps:
        return cls(api.max_body_bytes, {
            ("POST", "/v1/events/{event_type}:batch"): batch_cap(api),
            # The console's policy trial takes a zipped bundle; its page reads the form
            # under the same cap.
            ("POST", "/console/policy/trial"): api.console.max_upload_bytes + FORM_SLACK,
        })

    @property
    def largest(self) -> int:
        return max(self.default, *self.by_route.values())

    @property
    def smallest(self) -> int:
        return min(self.default, *self.by_route.values())

    def cap(self, method: str, template: str | None) -> int:
        if template is None:
            return self.default
        return self.by_route.get((method, template), self.default)


def batch_cap(api: ApiSettings) -> int:
    return api.max_body_bytes * BATCH_BODY_FACTOR


class BodyGuard:
    def __init__(self, app: ASGIApp, caps: BodyCaps) -> None:
        self.app = app
        self.caps = caps
        # Found once: every request with a declared body is compared with both.
        self.largest = caps.largest
        self.smallest = caps.smallest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if (declared is not None and declared > self.largest
                and principal_of_scope(scope) is not None):
            # Over every route's cap: refused before routing, whichever route it is for
            # (a caller without a key is refused 401 first, below or by its route).
            await self._refuse_unread(scope, receive, send, declared, self.largest)
            return
        checked = False
        received = 0
        cap = self.caps.default
        started = unread = False

        def check() -> None:
            nonlocal checked, cap, unread
            if not checked:
                checked = True
                try:
                    cap = self._check(scope, declared)
                except RefusedBeforeBody:
                    unread = True
                    raise

        if declared is not None and declared > self.smallest:
            scope[EARLY_CHECK] = check

        async def guarded_receive() -> Message:
            nonlocal received, unread
            check()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    unread = True
                    raise RefusedBeforeBody(PayloadTooLarge(
                        f"body exceeds the limit of {cap} bytes for this route"))
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if unread and _has_body(scope):
                    # The rest of the body stays unread: close once this is answered.
                    message["headers"] = [*message.get("headers", ()),
                                          (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, guarded_receive, watching_send)
        except RefusedBeforeBody as refused:
            # Raised where no handler answers it (a route reading outside FastAPI).
            if started:
                raise
            answer = problem_for(refused.error, getattr(scope.get("route"), "path", None))
            assert answer is not None
            await answer(scope, receive, watching_send)

    async def _refuse_unread(self, scope: Scope, receive: Receive, send: Send,
                             declared: int, cap: int) -> None:
        answer = problem_for(PayloadTooLarge(
            f"body of {declared} bytes exceeds the limit of {cap} bytes"))
        assert answer is not None
        answer.headers["Connection"] = "close"
        await answer(scope, receive, send)

    def _check(self, scope: Scope, declared: int | None) -> int:
        """Refuse (`RefusedBeforeBody`) a caller the route would refuse, or a `declared`
        body over the route's cap; return the cap."""
        route = scope.get("route")
        roles = _roles_of(route)
        if roles is not None:
            try:
                admit(Request(scope), roles)
            except ApiError as error:
                raise RefusedBeforeBody(error) from None
        cap = self.caps.cap(scope["method"], getattr(route, "path", None))
        if declared is not None and declared > cap:
            raise RefusedBeforeBody(PayloadTooLarge(
                f"body of {declared} bytes exceeds the limit of {cap} bytes for this route"))
        return cap


async def check_declared_body(request: Request) -> None:
    """Put a request that declares a body over the smallest cap to the guard's check as
    its route is about to run, whether or not the route reads its body: the caller must
    hold the route's role (401/403) and the body fit the route's cap (413). A dependency
    of every route of the app; for any other request, one lookup."""
    check: Callable[[], None] | None = request.scope.get(EARLY_CHECK)
    if check is not None:
        check()


def principal_of_scope(scope: Scope) -> object:
    return scope.get("state", {}).get(PRINCIPAL)


_ROLES: dict[int, tuple[object, tuple[Role, ...] | None]] = {}
"""Each route's roles, found once (routes live as long as the app)."""


def _roles_of(route: object) -> tuple[Role, ...] | None:
    """The roles a route's `require(...)` dependency admits; None for a public route."""
    if not isinstance(route, APIRoute):
        return None
    known = _ROLES.get(id(route))
    if known is not None and known[0] is route:
        return known[1]
    roles = _find_roles(route)
    _ROLES[id(route)] = (route, roles)   # holding the route keeps its id from reuse
    return roles


def _find_roles(route: APIRoute) -> tuple[Role, ...] | None:
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if isinstance(dependant.call, RoleRequirement):
            return dependant.call.roles
        pending.extend(dependant.dependencies)
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" or (name == b"content-length"
                                            and value.strip() not in (b"", b"0")):
            return True
    return False
