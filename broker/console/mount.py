"""Puts the console into the broker's FastAPI app, at `/console`.

`broker.bootstrap` lists `mount_console` in `ApiParts.extensions`, and `create_app`
calls it: the API layer never imports the console, and the console reads the broker only
through `broker.api.dependencies`.
"""

from __future__ import annotations

from urllib.parse import quote_plus

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from broker.console import (
    pages_accounting,
    pages_consents,
    pages_decisions,
    pages_flow,
    pages_integrity,
    pages_login,
    pages_map,
    pages_person,
    pages_placeholders,
    pages_policy,
)
from broker.console.errors import ConsoleError, SignInRequired
from broker.console.headers import ConsoleHeaders
from broker.console.integrity_jobs import VerifyJobs
from broker.console.policy_trials import TrialShelf
from broker.console.render import HERE, page
from broker.console.sessions import SessionStore

PAGES = (pages_login, pages_map, pages_decisions, pages_person, pages_accounting,
         pages_consents, pages_policy, pages_integrity, pages_flow, pages_placeholders)


async def _sign_in(request: Request, exc: Exception) -> Response:
    code = exc.code if isinstance(exc, SignInRequired) else "required"
    target = f"/console/login?message={quote_plus(code)}"
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _refused(request: Request, exc: Exception) -> Response:
    status = exc.status if isinstance(exc, ConsoleError) else 400
    message = exc.message if isinstance(exc, ConsoleError) else "refused"
    return page(request, None, "error.html", status=status, message=message,
                status_code=status)


def mount_console(app: FastAPI) -> None:
    app.state.console_sessions = SessionStore()
    app.state.console_jobs = VerifyJobs()
    app.state.console_trials = TrialShelf()
    app.add_middleware(ConsoleHeaders)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"),
              name="console-static")
    for module in PAGES:
        app.include_router(module.router)
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(ConsoleError, _refused)
