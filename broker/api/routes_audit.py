"""Audit queries for compliance officers: decisions and the accounting of disclosures.

Auditor keys only. Subject ids given here are pseudonymised before they touch the store,
which holds pseudonyms alone.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query
from pydantic import BeforeValidator

from broker.api import dependencies as deps
from broker.api.auth import require
from broker.api.problems import AUTHENTICATED, problem_responses
from broker.audit import AuditStore
from broker.audit.errors import AuditQueryError
from broker.audit.store import AuditFilter
from broker.auditor import Auditor
from broker.auth import Principal, Role
from broker.clock import epoch_ms
from broker.linking.service import LinkageService
from broker.policy_holder import LoadedPolicy

router = APIRouter(prefix="/v1/audit", tags=["audit"],
                   responses=problem_responses(*AUTHENTICATED))
AUDITOR = require(Role.AUDITOR)


def _iso_only(value: object) -> object:
    # pydantic would also take a number as seconds since the epoch; the schema promises
    # ISO 8601, so a number is refused rather than silently read one way.
    if isinstance(value, str) and not _ISO_8601.match(value):
        raise ValueError("give an ISO 8601 date and time, e.g. 2026-11-07T14:20:00Z")
    return value


_ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]


def _ms(value: datetime | None) -> int | None:
    return None if value is None else epoch_ms(value)


@router.get("/decisions", summary="Policy decisions, filtered, a page at a time")
async def decisions(
    subject: str | None = Query(
        default=None, max_length=200,
        description="subject id (pseudonymised before lookup). With record linkage, the "
                    "decisions filed under the person an agency's record with this id is "
                    "linked to (agencies in name order, the first that has one); an id no "
                    "record carries is looked up as it is"),
    person: str | None = Query(default=None, max_length=64,
                               description="a Handoff person id (record linkage): the "
                                           "decisions filed under that person"),
    recipient: str | None = Query(default=None, max_length=200),
    agreement: str | None = Query(default=None, max_length=200),
    subscription: str | None = Query(default=None, max_length=200),
    outcome: Literal["permit", "deny"] | None = None,
    since: IsoTime | None = Query(default=None, description="ISO 8601, inclusive"),
    until: IsoTime | None = Query(default=None, description="ISO 8601, exclusive"),
    after: int = Query(default=0, ge=0, le=2**62,
                       description="`next` of the previous page (the seq of its last record)"),
    limit: int = Query(default=100, ge=1, le=1000),
    _: Principal = Depends(AUDITOR),
    auditor: Auditor = Depends(deps.auditor),
    store: AuditStore = Depends(deps.audit_store),
    policy: LoadedPolicy = Depends(deps.policy),
    linkage: LinkageService | None = Depends(deps.linkage_if_kept),
) -> dict[str, Any]:
    if subject and person:
        raise AuditQueryError("give subject or person, not both")
    named = subject or person
    if subject and linkage is not None and policy.bundle.linkage is not None:
        linked = await anyio.to_thread.run_sync(
            linkage.person_for_id, subject, sorted(policy.bundle.agencies))
        named = linked or subject
    where = AuditFilter(
        subject=auditor.subject(named) if named else None, recipient=recipient,
        agreement=agreement, outcome=outcome, subscription=subscription, kind="decision",
        since_ms=_ms(since), until_ms=_ms(until))
    page = await anyio.to_thread.run_sync(lambda: store.page(
        where, cursor=after or None, limit=limit))
    return {"records": [r.to_dict() for r in page.records], "next": page.cursor or after}


@router.get("/disclosures/{subject_id}",
            summary="Accounting of disclosures for one person")
async def disclosures(
    subject_id: str,
    since: IsoTime | None = None, until: IsoTime | None = None,
    agency: str | None = Query(
        default=None, max_length=64,
        description="the agency whose id `subject_id` is; default: any agency's. With "
                    "record linkage the accounting covers the person that id is linked "
                    "to, across every agency's records"),
    _: Principal = Depends(AUDITOR),
    auditor: Auditor = Depends(deps.auditor),
    store: AuditStore = Depends(deps.audit_store),
    policy: LoadedPolicy = Depends(deps.policy),
    linkage: LinkageService | None = Depends(deps.linkage_if_kept),
) -> dict[str, Any]:
    pseudonym = auditor.subject(subject_id)
    if linkage is None or policy.bundle.linkage is None:
        where = AuditFilter(subject=pseudonym, since_ms=_ms(since), until_ms=_ms(until))
        found = await anyio.to_thread.run_sync(store.disclosures, where)
        return {"subject": pseudonym, "disclosures": [d.to_dict() for d in found]}
    agencies = [agency] if agency else sorted(policy.bundle.agencies)
    persons, found = await anyio.to_thread.run_sync(lambda: linkage.accounting_for_id(
        subject_id, agencies, since_ms=_ms(since), until_ms=_ms(until)))
    return {"subject": pseudonym,
            "persons": [{"person_id": p, "subject": linkage.pseudonym(p)} for p in persons],
            "disclosures": [d.to_dict() for d in found]}


@router.get("/head", summary="The chain head and the latest checkpoint")
def head(_: Principal = Depends(AUDITOR),
         store: AuditStore = Depends(deps.audit_store)) -> dict[str, Any]:
    seq, hash_hex = store.head()
    latest = store.latest_checkpoint()
    return {"seq": seq, "hash": hash_hex,
            "checkpoint": latest.to_dict() if latest is not None else None}
