"""Linkage review: the queue of uncertain matches, each with its evidence (field,
comparison level, weight; never a value), read by stewards and auditors as
`GET /v1/linkage/reviews` is; a steward decides an item here (same person, or
different) as `POST /v1/linkage/reviews/{id}:resolve` does, under their key id.

Records are shown by agency, id system and the subject pseudonym of the agency's id
(what the audit log files that id's own records under), never by the id itself.
Buttons appear only for a steward, and only in the process that links (the one writer
of the person index): an API process reading a replica shows the queue read-only and
says so. Not enabled where the bundle has no `linkage.yaml` or the process keeps no
person index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import RedirectResponse, Response

from broker.api import dependencies as deps
from broker.console.errors import ConsoleRefused
from broker.console.render import page
from broker.console.security import (
    ConsoleUser,
    audit,
    checked_form,
    linkage_reader,
    steward_user,
)
from broker.linking.service import LinkageService, ReviewView
from broker.linking.terms import RecordRef
from linkage.errors import ReviewStateError, UnknownReviewError
from linkage.scoring import probability_from_weight

router = APIRouter(include_in_schema=False)
SHOWN = 100
REVIEW_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
DECISIONS = {"same": "same person", "different": "different people"}


@dataclass(frozen=True, slots=True)
class ShownRecord:
    agency: str
    id_system: str
    pseudonym: str


@dataclass(frozen=True, slots=True)
class ShownReview:
    review: ReviewView
    probability: float
    record: ShownRecord
    candidate_records: tuple[ShownRecord, ...]


def _enabled(request: Request) -> LinkageService | None:
    service = deps.linkage_if_kept(request)
    return service if service is not None and deps.policy(request).bundle.linkage else None


def _shown(request: Request, review: ReviewView) -> ShownReview:
    subject = deps.auditor(request).subject

    def record(ref: RecordRef) -> ShownRecord:
        return ShownRecord(ref.agency, ref.id_system, subject(ref.id))

    return ShownReview(review, probability_from_weight(review.match_weight),
                       record(review.record),
                       tuple(record(r) for r in review.candidate_records))


@router.get("/console/linkage")
def linkage(request: Request, decided: str | None = None,
            user: ConsoleUser = Depends(linkage_reader)) -> Response:
    audit(request, user, "view linkage review")
    service = _enabled(request)
    if service is None:
        kept = deps.linkage_if_kept(request) is not None
        return page(request, user, "not_enabled.html", "linkage", title="Linkage review",
                    what="the queue of uncertain matches to accept or reject",
                    why="the policy bundle has no linkage.yaml" if kept
                    else "this process keeps no person index")
    reviews = tuple(_shown(request, r) for r in service.open_reviews(SHOWN + 1))
    last = None
    if decided and len(decided) <= 64:
        try:
            last = service.review(decided)
        except UnknownReviewError:
            last = None
    return page(request, user, "linkage.html", "linkage", reviews=reviews[:SHOWN],
                more=len(reviews) > SHOWN, can_decide=user.is_steward and service.writable,
                writable=service.writable, last=last if last and last.status != "open"
                else None, decisions=DECISIONS)


@router.post("/console/linkage/reviews/{review_id}/resolve")
async def resolve(request: Request, review_id: str = Path(pattern=REVIEW_ID),
                  user: ConsoleUser = Depends(steward_user)) -> Response:
    form = await checked_form(request, user)
    given = form.get("decision")
    decision: Literal["same", "different"]
    if given == "same":
        decision = "same"
    elif given == "different":
        decision = "different"
    else:
        raise ConsoleRefused(400, "the decision must be same or different")
    service = _enabled(request)
    if service is None:
        raise ConsoleRefused(404, "record linkage is not enabled in this broker")
    if not service.writable:
        audit(request, user, f"resolve review {review_id}: {decision}", status=409)
        raise ConsoleRefused(409, "this process reads a replica of the person index; "
                             "review items are decided in the process with the router "
                             "role")
    try:
        await anyio.to_thread.run_sync(
            lambda: service.resolve_review(review_id, decision, user.principal.key_id))
    except UnknownReviewError:
        audit(request, user, f"resolve review {review_id}: {decision}", status=404)
        raise ConsoleRefused(404, "no review item with that id") from None
    except ReviewStateError:
        audit(request, user, f"resolve review {review_id}: {decision}", status=409)
        raise ConsoleRefused(409, "this review item was already decided") from None
    audit(request, user, f"resolve review {review_id}: {decision}")
    return RedirectResponse(f"/console/linkage?decided={review_id}", status_code=303)
