"""Referrals: the referral funnel by receiving program, referring agency and month, as
`GET /v1/reports/referrals` gives it (the same `ReferralService.funnel`, so the same
counts and the same suppressed cells), and the overdue handoffs (open alerts, by
referral id and program; no person is named).

Not enabled where the process keeps no referral ledger or the bundle has no referral
terms (`referrals.yaml`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from broker.api import dependencies as deps
from broker.console.render import page
from broker.console.security import ConsoleUser, audit, report_reader
from broker.referral_service import ReferralService
from referrals.report import COUNTS
from referrals.report_render import DEFINITIONS

router = APIRouter(include_in_schema=False)
OVERDUE_SHOWN = 200
COLUMNS = tuple((name, name.replace("_", " ")) for name in COUNTS)


@router.get("/console/referrals")
def referrals(request: Request, user: ConsoleUser = Depends(report_reader),
              service: ReferralService | None = Depends(deps.referrals_if_kept)
              ) -> Response:
    audit(request, user, "view referrals")
    if service is None or not deps.policy(request).bundle.referrals:
        return page(request, user, "not_enabled.html", "referrals", title="Referrals",
                    what="the referral funnel by program, with overdue handoffs",
                    why="the policy bundle has no referral terms (referrals.yaml)"
                    if service is not None else "this process keeps no referral ledger")
    report = service.funnel()
    overdue = service.overdue(limit=OVERDUE_SHOWN + 1)
    return page(request, user, "referrals.html", "referrals", report=report,
                columns=COLUMNS, definitions=DEFINITIONS,
                overdue=overdue[:OVERDUE_SHOWN], more=len(overdue) > OVERDUE_SHOWN)
