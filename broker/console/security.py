"""Who is using the console, and whether a request may do what it asks.

- `console_user`: the signed-in user, from the session cookie, re-checked against the
  keys file at every request (a revoked or expired key ends the session), and for a
  session opened with a client certificate, against this connection's certificate.
- `checked_form`: a POST's body, capped before it is read and parsed only after the
  session is known, refused unless it comes from this site (Origin, else Referer or
  `Sec-Fetch-Site`) and carries the session's form token.
- `audit`: every page and action lands in the audit log like an API call: the key id,
  the page and action, a person only by pseudonym.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.types import Message

from broker.api import dependencies as deps
from broker.auth import KeyCheck, Principal, Role
from broker.auth.mtls import client_names
from broker.console.errors import ConsoleRefused, SignInRequired, TooLarge
from broker.console.sessions import ConsoleSession, SessionStore

SESSION_COOKIE = "handoff_console"
LOGIN_COOKIE = "handoff_console_login"
CONSOLE_ROLES = (Role.AUDITOR, Role.ADMIN)
FORM_BYTES = 16_384


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    principal: Principal
    session: ConsoleSession
    token: str

    @property
    def csrf(self) -> str:
        return self.session.csrf

    @property
    def is_admin(self) -> bool:
        return self.principal.has(Role.ADMIN)


def may_use_console(principal: Principal | None) -> bool:
    return principal is not None and any(principal.has(r) for r in CONSOLE_ROLES)


def sessions(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.console_sessions
    return store


def _still_valid(request: Request, session: ConsoleSession) -> KeyCheck:
    keyring = deps.keyring(request)
    credential = session.credential
    if credential.kind == "key" and credential.digest is not None:
        return keyring.check_digest(credential.digest)
    names = client_names(request.scope)
    if not names or not set(credential.names) & set(names):
        return KeyCheck(None, reason="the client certificate this session was opened "
                        "with is not presented")
    return keyring.check_subject(names)


def console_user(request: Request) -> ConsoleUser:
    """The signed-in user; otherwise `SignInRequired` (the page sends them to sign in)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired("sign in to use the console")
    store = sessions(request)
    session = store.find(token, deps.clock(request)())
    if session is None:
        # A forged cookie, or one replayed after sign-out or expiry.
        deps.auditor(request).access_refused(
            None, request.method, _page(request), 401, "console session unknown or ended")
        raise SignInRequired("your session has ended; sign in again", "ended")
    check = _still_valid(request, session)
    principal = check.principal
    if principal is None or not may_use_console(principal) or (
            principal.key_id != session.principal.key_id):
        store.end(token)
        deps.auditor(request).access_refused(
            session.principal, request.method, _page(request), 401,
            f"console session ended: {check.reason or 'the key lost the auditor and admin roles'}")
        raise SignInRequired("your key may no longer use the console; sign in again", "key")
    return ConsoleUser(principal, session, token)


def admin_user(user: ConsoleUser = Depends(console_user)) -> ConsoleUser:
    if not user.is_admin:
        raise ConsoleRefused(403, "this needs a key with the admin role")
    return user


def _page(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


def own_origin(request: Request) -> str:
    host = request.headers.get("host", "")
    return f"{request.url.scheme}://{host}"


def same_site(request: Request) -> bool:
    """Whether a state-changing request comes from the console's own pages."""
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == own_origin(request)
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    referer = request.headers.get("referer", "")
    return referer.startswith(own_origin(request) + "/")


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise TooLarge(f"the request is over the {limit} byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"the request is over the {limit} byte limit")
    return bytes(body)


async def parse_form(request: Request, limit: int, max_files: int = 0) -> FormData:
    """The urlencoded or multipart form, read under `limit` bytes."""
    body = await read_capped(request, limit)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    capped = Request(request.scope, replay)
    return await capped.form(max_files=max_files, max_fields=50)


async def checked_form(request: Request, user: ConsoleUser, limit: int = FORM_BYTES,
                       max_files: int = 0) -> FormData:
    """A POST's form from the signed-in user's own console page, token checked."""
    if not same_site(request):
        deps.auditor(request).access_refused(
            user.principal, request.method, _page(request), 403, "cross-site console form")
        raise ConsoleRefused(403, "this form was not sent from the console's own pages")
    header = request.headers.get("x-csrf-token")
    form = await parse_form(request, limit, max_files)
    given = form.get("csrf") or header
    if not isinstance(given, str) or not hmac.compare_digest(given, user.csrf):
        deps.auditor(request).access_refused(
            user.principal, request.method, _page(request), 403, "console form token wrong")
        raise ConsoleRefused(403, "the form token is missing or stale; reload the page "
                             "and try again")
    return form


def audit(request: Request, user: ConsoleUser, action: str, *, subject: str | None = None,
          status: int = 200) -> None:
    """Record a page view or action (never the identifier a user typed)."""
    deps.auditor(request).console_action(user.principal, request.method, _page(request),
                                         action, status, subject)
