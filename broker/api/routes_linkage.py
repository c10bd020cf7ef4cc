"""Record linkage for data stewards: the clerical review queue, reversible links, and
who an agency's record is linked to.

Stewards (`steward` role) decide reviews, unlink records, merge persons and undo
changes; auditors read. Evidence is a weight per field and comparison level, never a
value: a steward looks the people up in the agencies' own systems by the agency ids
shown. Every change is an audit record (`linkage_*`) and re-keys what followed it.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from broker.api import dependencies as deps
from broker.api.auth import require
from broker.api.problems import AUTHENTICATED, problem_responses
from broker.api.routes_audit import IsoTime
from broker.auth import Principal, Role
from broker.clock import epoch_ms
from broker.linking.service import ClericalReason, LinkageService
from broker.linking.terms import RecordRef
from linkage.errors import UnknownRecordError
from policy.linkage_terms import DEFAULT_ID_SYSTEM

router = APIRouter(prefix="/v1/linkage", tags=["linkage"],
                   responses=problem_responses(*AUTHENTICATED, 404, 503))
STEWARD = require(Role.STEWARD)
READER = require(Role.STEWARD, Role.AUDITOR)
_CHANGE = problem_responses(404, 409)
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResolveReview(_Body):
    decision: Literal["same", "different"] = Field(
        description="`same`: the record is the candidate person (its provisional person "
                    "is merged into the candidate); `different`: they stay apart")


class UnlinkRecord(_Body):
    agency: str = Field(pattern=_ID, description="the agency whose record it is")
    id_system: str = Field(default=DEFAULT_ID_SYSTEM, pattern=_ID)
    id: str = Field(min_length=1, max_length=128, description="the agency's own id")
    reason: ClericalReason


class MergePersons(_Body):
    into_person_id: str = Field(min_length=1, max_length=64)
    reason: ClericalReason


class UndoChange(_Body):
    reason: ClericalReason


@router.get("/reviews", summary="Open clerical review items, oldest first")
def open_reviews(limit: int = Query(default=100, ge=1, le=1000),
                 _: Principal = Depends(READER),
                 linkage: LinkageService = Depends(deps.linkage)) -> dict[str, Any]:
    return {"reviews": [r.to_dict() for r in linkage.open_reviews(limit)]}


@router.get("/reviews/{review_id}", summary="One review item, open or decided")
def review(review_id: str, _: Principal = Depends(READER),
           linkage: LinkageService = Depends(deps.linkage)) -> dict[str, Any]:
    return linkage.review(review_id).to_dict()


@router.post("/reviews/{review_id}:resolve", summary="Decide a review: same or different",
             responses=_CHANGE)
def resolve_review(review_id: str, body: ResolveReview,
                   principal: Principal = Depends(STEWARD),
                   linkage: LinkageService = Depends(deps.linkage)) -> dict[str, Any]:
    return linkage.resolve_review(review_id, body.decision, principal.key_id).to_dict()


@router.post("/records:unlink", summary="Take a record off its person (a new person id)",
             responses=_CHANGE)
def unlink(body: UnlinkRecord, principal: Principal = Depends(STEWARD),
           linkage: LinkageService = Depends(deps.linkage)) -> dict[str, Any]:
    record = RecordRef(body.agency, body.id_system, body.id)
    return linkage.unlink(record, principal.key_id, body.reason).to_dict()


@router.post("/persons/{person_id}:merge",
             summary="Move every record of a person to another; the old id redirects",
             responses=_CHANGE)
def merge(person_id: str, body: MergePersons, principal: Principal = Depends(STEWARD),
          linkage: LinkageService = Depends(deps.linkage)) -> dict[str, Any]:
    return linkage.merge(person_id, body.into_person_id, principal.key_id,
                         body.reason).to_dict()


@router.post("/changes/{seq}:undo",
             summary="Reverse a link, unlink or merge (with new, audited changes)",
             responses=_CHANGE)
def undo(seq: int, body: UndoChange, principal: Principal = Depends(STEWARD),
         linkage: LinkageService = Depends(deps.linkage)) -> dict[str, Any]:
    return linkage.undo(seq, principal.key_id, body.reason).to_dict()


@router.get("/persons/{person_id}", summary="A person's agency records")
def person(person_id: str, _: Principal = Depends(READER),
           linkage: LinkageService = Depends(deps.linkage)) -> dict[str, Any]:
    return linkage.person(person_id).to_dict()


@router.get("/records/{agency}/{record_id}",
            summary="The person an agency's record is linked to")
def record_person(agency: str, record_id: str,
                  id_system: str = Query(default=DEFAULT_ID_SYSTEM, max_length=64),
                  _: Principal = Depends(READER),
                  linkage: LinkageService = Depends(deps.linkage)) -> dict[str, Any]:
    person_id = linkage.person_of(agency, record_id, id_system)
    if person_id is None:
        raise UnknownRecordError("no record with that agency id is in the person index")
    return linkage.person(person_id).to_dict()


@router.get("/persons/{person_id}/disclosures",
            summary="Accounting of disclosures for a linked person (every record)")
def disclosures(person_id: str, since: IsoTime | None = None, until: IsoTime | None = None,
                _: Principal = Depends(require(Role.AUDITOR)),
                linkage: LinkageService = Depends(deps.linkage)) -> dict[str, Any]:
    found = linkage.disclosures(
        person_id, since_ms=None if since is None else epoch_ms(since),
        until_ms=None if until is None else epoch_ms(until))
    current = linkage.current_person(person_id)
    return {"person_id": current, "subject": linkage.pseudonym(current),
            "disclosures": [d.to_dict() for d in found]}
