"""Authentication as pure ASGI middleware, authorisation as endpoint dependencies.

The middleware only works out who is calling (a bearer API key → `Principal`) and puts
it in the request scope; each endpoint states what it needs with `require(...)`, so the
rule for an endpoint is written next to the endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.api.problems import AuthenticationRequired, Forbidden
from broker.auth import KeyRing, Principal, Role

PRINCIPAL = "handoff.principal"


class BearerKeyMiddleware:
    """Resolve `Authorization: Bearer <key>` to a principal, or leave it unset."""

    def __init__(self, app: ASGIApp, keyring: KeyRing) -> None:
        self.app = app
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            principal: Principal | None = None
            for name, value in scope.get("headers", ()):
                if name == b"authorization":
                    scheme, _, secret = value.decode("latin-1").partition(" ")
                    if scheme.lower() == "bearer" and secret.strip():
                        principal = self.keyring.authenticate(secret.strip())
                    break
            scope.setdefault("state", {})[PRINCIPAL] = principal
        await self.app(scope, receive, send)


RefusalHook = Callable[[Request, Principal | None, int, str], None]


def principal_of(request: Request) -> Principal | None:
    state: dict[str, Any] = request.scope.get("state", {})
    return state.get(PRINCIPAL)


def require(*roles: Role) -> Callable[[Request], Principal]:
    """A dependency that admits a caller holding any of `roles`, and records refusals."""

    def dependency(request: Request) -> Principal:
        principal = principal_of(request)
        if principal is None:
            _refused(request, None, 401, "missing or unknown API key")
            raise AuthenticationRequired(
                "send a valid API key as 'Authorization: Bearer <key>'"
            )
        if not any(principal.has(r) for r in roles):
            needed = " or ".join(r.value for r in roles)
            _refused(request, principal, 403, f"role {needed} required")
            raise Forbidden(f"this key lacks the {needed} role")
        return principal

    return dependency


def refuse(request: Request, principal: Principal, detail: str) -> Forbidden:
    """Record a refusal for a resource the caller may not touch, and return the error."""
    _refused(request, principal, 403, detail)
    return Forbidden(detail)


def _refused(request: Request, principal: Principal | None, status: int, why: str) -> None:
    hook: RefusalHook | None = getattr(request.app.state, "on_refusal", None)
    if hook is not None:
        hook(request, principal, status, why)
