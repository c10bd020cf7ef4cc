"""Authentication as pure ASGI middleware, authorisation as endpoint dependencies.

The middleware only works out who is calling (a bearer API key → `Principal`) and puts
it in the request scope; each endpoint states what it needs with `require(...)`, so the
rule for an endpoint is written next to the endpoint.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import anyio
from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.api.problems import AuthenticationRequired, Forbidden
from broker.auth import KeyCheck, KeyRing, Principal, Role
from broker.auth.keys import UNKNOWN
from broker.auth.mtls import client_names

PRINCIPAL = "handoff.principal"
KEY_CHECK = "handoff.key_check"


class BearerKeyMiddleware:
    """Resolve `Authorization: Bearer <key>` (or `Basic`, the key as user name; or a
    verified client certificate) to a principal, or leave it unset.

    With mutual TLS the certificate names the agency; a bearer key sent over the same
    connection must belong to that agency too, or the call is unauthenticated.
    """

    def __init__(self, app: ASGIApp, keyring: KeyRing) -> None:
        self.app = app
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            check = self._check(scope)
            state = scope.setdefault("state", {})
            state[PRINCIPAL] = check.principal
            state[KEY_CHECK] = check
        await self.app(scope, receive, send)

    def _check(self, scope: Scope) -> KeyCheck:
        by_key: KeyCheck | None = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                secret = key_of(value)
                if secret:
                    by_key = self.keyring.check(secret)
                break
        names = client_names(scope)
        if not names:
            return by_key or UNKNOWN
        by_cert = self.keyring.check_subject(names)
        if by_key is None:
            return by_cert
        if (by_cert.principal is not None and by_key.principal is not None
                and by_key.principal.agency != by_cert.principal.agency):
            return KeyCheck(None, by_key.key, "API key and client certificate name "
                            "different agencies")
        return by_key


def key_of(authorization: bytes) -> str | None:
    """The API key an `Authorization` header carries: `Bearer <key>`, or HTTP basic with
    the key as the user name and any password, as Confluent clients send it
    (`basic.auth.user.info=<key>:`)."""
    scheme, _, credentials = authorization.decode("latin-1").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    return None


RefusalHook = Callable[[Request, Principal | None, int, str], None]


def principal_of(request: Request) -> Principal | None:
    state: dict[str, Any] = request.scope.get("state", {})
    return state.get(PRINCIPAL)


class RoleRequirement:
    """A dependency that admits a caller holding any of `roles`, and records refusals.

    `broker.api.body_guard` reads `roles` to refuse a caller before its body is read;
    the dependency checks again, so a route is guarded whatever the middleware does.
    """

    def __init__(self, roles: tuple[Role, ...]) -> None:
        self.roles = roles

    async def __call__(self, request: Request) -> Principal:
        # Admitting is dictionary lookups: done on the event loop, not in a worker thread
        # (a thread hop per request is most of what a small request costs). A refusal
        # writes an audit record, so it is made in a worker thread.
        principal = principal_of(request)
        if principal is not None:
            for role in self.roles:   # a loop, not any(...): no generator per request
                if principal.has(role):
                    return principal
        return await anyio.to_thread.run_sync(admit, request, self.roles)


def require(*roles: Role) -> RoleRequirement:
    """A dependency that admits a caller holding any of `roles`, and records refusals."""
    return RoleRequirement(roles)


def admit(request: Request, roles: tuple[Role, ...]) -> Principal:
    """The caller, if it holds one of `roles`; else the refusal is audited and raised
    (401 without a usable credential, 403 without the role)."""
    principal = principal_of(request)
    if principal is None:
        check: KeyCheck = request.scope.get("state", {}).get(KEY_CHECK) or UNKNOWN
        known = check.key
        # A known but expired or revoked key is named, so its use stays attributable.
        who = Principal(known.id, known.agency, frozenset()) if known else None
        _refused(request, who, 401, check.reason)
        if known is not None:
            raise AuthenticationRequired(f"this credential may no longer be used "
                                         f"({check.reason}); ask for a new key")
        raise AuthenticationRequired(
            "send a valid API key as 'Authorization: Bearer <key>' (or as the user "
            "name of HTTP basic authentication)"
        )
    if not any(principal.has(r) for r in roles):
        needed = " or ".join(r.value for r in roles)
        _refused(request, principal, 403, f"role {needed} required")
        raise Forbidden(f"this key lacks the {needed} role")
    return principal


def refuse(request: Request, principal: Principal, detail: str) -> Forbidden:
    """Record a refusal for a resource the caller may not touch, and return the error."""
    _refused(request, principal, 403, detail)
    return Forbidden(detail)


def key_lapsed(request: Request, principal: Principal, reason: str) -> AuthenticationRequired:
    """Record that the key of an open stream or long poll stopped being valid (`reason`,
    e.g. `key_revoked`), and return the error that ends the call."""
    why = reason.replace("_", " ")
    _refused(request, principal, 401, why)
    return AuthenticationRequired(f"this credential may no longer be used ({why}); "
                                  "ask for a new key")


def _refused(request: Request, principal: Principal | None, status: int, why: str) -> None:
    hook: RefusalHook | None = getattr(request.app.state, "on_refusal", None)
    if hook is not None:
        hook(request, principal, status, why)
