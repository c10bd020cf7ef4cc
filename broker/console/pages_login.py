"""Signing in and out: an API key (auditor or admin role), or the client certificate
the connection was made with, exchanged for a short-lived session cookie."""

from __future__ import annotations

import hmac
import secrets

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from broker.api import dependencies as deps
from broker.api.auth import principal_of
from broker.auth import Principal, hash_key
from broker.auth.mtls import client_names
from broker.console.errors import ConsoleRefused
from broker.console.render import page
from broker.console.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleUser,
    audit,
    checked_form,
    console_user,
    may_use_console,
    parse_form,
    same_site,
    sessions,
)
from broker.console.sessions import Credential

router = APIRouter(include_in_schema=False)
LOGIN_BYTES = 4096
HOME = "/console/map"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _certificate_principal(request: Request) -> Principal | None:
    principal = principal_of(request)
    if principal is not None and client_names(request.scope) and may_use_console(principal):
        return principal
    return None


@router.get("/console")
def home() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=303)


MESSAGES = {
    "required": "Sign in to use the console.",
    "ended": "Your session has ended; sign in again.",
    "key": "Your key may no longer use the console; sign in again.",
    "signed-out": "Signed out.",
}
"""What the sign-in page may say, by code: it never shows text taken from its address."""


@router.get("/console/login")
def login_form(request: Request, message: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    response = page(request, None, "login.html", login_token=token,
                    message=MESSAGES.get(message, ""),
                    certificate=_certificate_principal(request))
    response.set_cookie(LOGIN_COOKIE, token, max_age=600, path="/console/login",
                        httponly=True, samesite="strict", secure=_secure(request))
    return response


def _refuse_login(request: Request, status: int, message: str) -> Response:
    response = page(request, None, "login.html", status=status, message=message,
                    login_token="", certificate=None)
    response.delete_cookie(LOGIN_COOKIE, path="/console/login")
    return response


@router.post("/console/login")
async def login(request: Request) -> Response:
    auditor = deps.auditor(request)
    if not same_site(request):
        auditor.access_refused(None, "POST", "/console/login", 403, "cross-site sign-in")
        raise ConsoleRefused(403, "sign in from the console's own sign-in page")
    form = await parse_form(request, LOGIN_BYTES)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    given = form.get("login_token")
    if not expected or not isinstance(given, str) or not hmac.compare_digest(expected, given):
        return _refuse_login(request, 403, "The sign-in form expired; try again.")
    keyring = deps.keyring(request)
    if form.get("use_certificate"):
        principal = _certificate_principal(request)
        if principal is None:
            return _refuse_login(request, 401, "No client certificate for an auditor or "
                                 "admin key came with this connection.")
        credential = Credential("mtls", names=tuple(client_names(request.scope)))
    else:
        secret = form.get("api_key")
        secret = secret.strip() if isinstance(secret, str) else ""
        check = await anyio.to_thread.run_sync(keyring.check, secret) if secret else None
        if check is None or check.principal is None:
            known = check.key if check is not None else None
            who = Principal(known.id, known.agency, frozenset()) if known else None
            auditor.access_refused(who, "POST", "/console/login", 401,
                                   check.reason if check else "no API key given")
            return _refuse_login(request, 401, "That key is unknown, expired or revoked.")
        principal = check.principal
        credential = Credential("key", digest=hash_key(secret))
    if not may_use_console(principal):
        auditor.access_refused(principal, "POST", "/console/login", 403,
                               "role auditor or admin required")
        return _refuse_login(request, 403, "The console is for keys with the auditor or "
                             "admin role; this key has neither.")
    settings = deps.api_settings(request).console
    token, session = sessions(request).open(
        principal, credential, deps.clock(request)(),
        int(settings.session_minutes * 60_000), int(settings.idle_minutes * 60_000))
    user = ConsoleUser(principal, session, token)
    audit(request, user, "sign in")
    response = RedirectResponse(HOME, status_code=303)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(settings.session_minutes * 60),
                        path="/console", httponly=True, samesite="strict",
                        secure=_secure(request))
    response.delete_cookie(LOGIN_COOKIE, path="/console/login")
    return response


@router.post("/console/logout")
async def logout(request: Request, user: ConsoleUser = Depends(console_user)) -> Response:
    await checked_form(request, user)
    sessions(request).end(user.token)
    audit(request, user, "sign out")
    response = RedirectResponse("/console/login?message=signed-out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response
