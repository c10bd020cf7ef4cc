"""Referrals and linkage review: their places in the console, waiting for a provider.

Each page asks its provider below for the service it shows. Until the referral report
(the funnel by program, overdue handoffs) or the linkage review queue (uncertain matches
to accept or reject) is wired into `ApiParts` with a provider in
`broker.api.dependencies`, the provider answers None and the page says the feature is
not enabled here. Wiring one: give the provider a body that returns the service, and
replace the page's template with one that shows it.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from broker.console.render import page
from broker.console.security import ConsoleUser, audit, console_user

router = APIRouter(include_in_schema=False)


class ReferralReport(Protocol):
    """What the referrals page will show: the funnel by program, overdue handoffs."""

    def funnel(self, since_ms: int, until_ms: int) -> object: ...

    def overdue(self, now_ms: int) -> object: ...


class LinkageReview(Protocol):
    """What the linkage page will show: uncertain matches, to accept or reject."""

    def pending(self, limit: int) -> object: ...

    def decide(self, pair_id: str, accept: bool, reviewer: str) -> None: ...


def referral_report(request: Request) -> ReferralReport | None:
    return None


def linkage_review(request: Request) -> LinkageReview | None:
    return None


@router.get("/console/referrals")
def referrals(request: Request, user: ConsoleUser = Depends(console_user),
              report: ReferralReport | None = Depends(referral_report)) -> Response:
    audit(request, user, "view referrals")
    return page(request, user, "not_enabled.html", "referrals", title="Referrals",
                what="the referral funnel by program, with overdue handoffs",
                enabled=report is not None)


@router.get("/console/linkage")
def linkage(request: Request, user: ConsoleUser = Depends(console_user),
            review: LinkageReview | None = Depends(linkage_review)) -> Response:
    audit(request, user, "view linkage review")
    return page(request, user, "not_enabled.html", "linkage", title="Linkage review",
                what="the queue of uncertain matches to accept or reject",
                enabled=review is not None)
