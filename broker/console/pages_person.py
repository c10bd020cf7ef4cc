"""Searching by the identifier a clerk has: it becomes the subject pseudonym here, on the
server, and never appears in a URL, a log line or the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from broker.api import dependencies as deps
from broker.console.errors import ConsoleRefused
from broker.console.security import ConsoleUser, audit, checked_form, console_user

router = APIRouter(include_in_schema=False)
TARGETS = {"decisions": "/console/decisions", "accounting": "/console/accounting",
           "consents": "/console/consents"}
MAX_IDENTIFIER = 200


@router.post("/console/person")
async def find_person(request: Request, user: ConsoleUser = Depends(console_user)
                      ) -> Response:
    form = await checked_form(request, user)
    identifier = form.get("identifier")
    target = TARGETS.get(str(form.get("target", "")))
    if target is None:
        raise ConsoleRefused(422, "choose what to show: decisions, accounting or consents")
    if not isinstance(identifier, str) or not identifier.strip():
        raise ConsoleRefused(422, "type the person's identifier as your agency records it")
    if len(identifier) > MAX_IDENTIFIER:
        raise ConsoleRefused(422, f"an identifier is at most {MAX_IDENTIFIER} characters")
    # Exactly as the publishing agency sent it: no case or space folding beyond the ends.
    pseudonym, own = subject_of(request, identifier.strip())
    audit(request, user, f"search by person ({form.get('target')})", subject=pseudonym)
    also = f"&also={own}" if own != pseudonym else ""
    return RedirectResponse(f"{target}?subject={pseudonym}{also}", status_code=303)


def subject_of(request: Request, identifier: str) -> tuple[str, str]:
    """The pseudonym the person's decisions are filed under, and the identifier's own.

    With record linkage the first is the person an agency's record with this id is linked
    to (agencies in name order, the first that knows the id); the second is what consents
    are recorded under, and decisions on event types that are not linked or from before
    linkage. Without linkage, or for an id no agency's record carries, both are the id's
    own pseudonym."""
    own = deps.auditor(request).subject(identifier)
    linkage = deps.linkage_if_kept(request)
    bundle = deps.policy(request).bundle
    if linkage is not None and bundle.linkage is not None:
        person = linkage.person_for_id(identifier, sorted(bundle.agencies))
        if person is not None:
            return linkage.pseudonym(person), own
    return own, own
