"""Aggregate reports for evaluators: `GET /v1/reports/referrals`, the referral funnel.

Aggregates only: counts under the threshold (`referrals.report_threshold`, default 11)
are suppressed, with complementary suppression so none can be worked out from the
totals (docs/referrals.md). A caller may ask for a higher threshold, never a lower one.
Keys with the `evaluator`, `auditor` or `admin` role may read it.
"""

from __future__ import annotations

import datetime as dt

import anyio.to_thread
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from broker.api import dependencies as deps
from broker.api.auth import require
from broker.api.problems import AUTHENTICATED, ApiError, problem_responses
from broker.auth import Principal, Role
from broker.clock import epoch_ms
from broker.referral_service import ReferralService, ReportRequestError
from referrals.report_render import to_csv, to_json, to_table

router = APIRouter(tags=["reports"], responses=problem_responses(*AUTHENTICATED, 503))


class InvalidReportRequest(ApiError):
    status, slug, title = 422, "invalid-request", "Invalid request"


@router.get("/v1/reports/referrals", summary="The referral funnel, small cells suppressed",
            responses={200: {"content": {"application/json": {}, "text/csv": {},
                                         "text/plain": {}}}})
async def referral_funnel(
    format: str = Query("json", pattern="^(json|csv|table)$",
                        description="json (suppressed counts null), csv or table ('*')"),
    threshold: int | None = Query(None, ge=1, description="suppress counts below this "
                                  "(at least the configured referrals.report_threshold)"),
    timezone: str | None = Query(None, max_length=64, description="IANA zone of the "
                                 "months (default referrals.report_timezone)"),
    at: dt.datetime | None = Query(None, description="report as of this time (ISO 8601; "
                                   "default now)"),
    _: Principal = Depends(require(Role.EVALUATOR, Role.AUDITOR, Role.ADMIN)),
    referrals: ReferralService = Depends(deps.referrals),
) -> Response:
    at_ms = None if at is None else epoch_ms(at)
    try:
        report = await anyio.to_thread.run_sync(
            lambda: referrals.funnel(threshold=threshold, timezone=timezone, at_ms=at_ms))
    except ReportRequestError as exc:
        raise InvalidReportRequest(str(exc)) from exc
    if format == "csv":
        return PlainTextResponse(to_csv(report), media_type="text/csv")
    if format == "table":
        return PlainTextResponse(to_table(report))
    return JSONResponse(to_json(report))
