"""The decision explorer: decisions filtered by person, recipient, agreement, outcome and
time, a keyset page at a time; one decision with every field of its source event."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from broker.api import dependencies as deps
from broker.audit import AuditFilter, AuditReader, AuditRecord, Checkpoint
from broker.audit.explanation import DecisionView, decision_view, is_decision
from broker.console.errors import ConsoleRefused
from broker.console.integrity_jobs import VerifyJobs, verify_jobs
from broker.console.person import subject_param
from broker.console.render import day_start_ms, page
from broker.console.security import ConsoleUser, audit, console_user
from broker.policy_holder import LoadedPolicy

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
OUTCOMES = ("permit", "deny")


@dataclass(frozen=True, slots=True)
class Row:
    record: AuditRecord
    view: DecisionView


@dataclass(frozen=True, slots=True)
class ChainPlace:
    """Where a record sits in the chain, and what vouches for it."""

    intact: bool
    """Its hash recomputes from its content and the previous hash."""
    checkpoint: Checkpoint | None
    """The latest signed checkpoint, when it covers the record."""
    verified: bool
    """A full verification run from this console found the chain sound up to a signed
    checkpoint that covers the record."""
    verified_at_ms: int | None


def _text(value: str | None, limit: int = 200) -> str | None:
    value = (value or "").strip()
    return value[:limit] or None


@router.get("/console/decisions")
def explorer(request: Request, subject: str | None = None, also: str | None = None,
             recipient: str | None = None,
             agreement: str | None = None, outcome: str | None = None,
             since: str | None = None, until: str | None = None,
             cursor: int | None = Query(default=None, ge=0, le=2**62),
             user: ConsoleUser = Depends(console_user),
             reader: AuditReader = Depends(deps.audit_reader),
             policy: LoadedPolicy = Depends(deps.policy)) -> Response:
    pseudonym = subject_param(subject)
    if outcome not in OUTCOMES:
        outcome = None
    where = AuditFilter(kind="decision", subject=pseudonym, recipient=_text(recipient),
                        agreement=_text(agreement), outcome=outcome,
                        since_ms=day_start_ms(since), until_ms=day_start_ms(until, after=True))
    found = reader.page(where, cursor=cursor, limit=PAGE_SIZE, newest_first=True)
    rows = [Row(r, decision_view(r)) for r in found.records]
    audit(request, user, "search decisions", subject=pseudonym)
    query = {k: v for k, v in (("subject", pseudonym), ("recipient", where.recipient),
                               ("agreement", where.agreement), ("outcome", outcome),
                               ("since", since), ("until", until)) if v}
    return page(request, user, "decisions.html", "decisions", rows=rows, query=query,
                next_cursor=found.cursor if found.more else None, outcomes=OUTCOMES,
                agencies=sorted(policy.bundle.agencies),
                agreements=sorted(policy.bundle.agreements), first_page=cursor is None,
                also=subject_param(also) if subject_param(also) != pseudonym else None)


def find_record(reader: AuditReader, seq: int) -> AuditRecord | None:
    """The record with this seq. (Pages run in time order, which is not always seq order:
    a record written for an earlier event can follow later ones; the stream is by seq.)"""
    records = reader.iter_records(AuditFilter(), after=seq - 1)
    try:
        first = next(records, None)
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
    return first if first is not None and first.seq == seq else None


def chain_place(record: AuditRecord, reader: AuditReader, jobs: VerifyJobs) -> ChainPlace:
    latest = reader.latest_checkpoint()
    covering = latest if latest is not None and latest.seq >= record.seq else None
    last = jobs.last_sound()
    verified = (covering is not None and last is not None
                and last.covered_seq is not None and last.covered_seq >= record.seq)
    return ChainPlace(record.computed_hash() == record.hash, covering, verified,
                      last.finished_ms if verified and last is not None else None)


@router.get("/console/decisions/{seq}")
def decision(seq: int, request: Request, user: ConsoleUser = Depends(console_user),
             reader: AuditReader = Depends(deps.audit_reader),
             policy: LoadedPolicy = Depends(deps.policy)) -> Response:
    record = find_record(reader, seq) if 0 < seq <= 2**62 else None
    if record is None or not is_decision(record):
        raise ConsoleRefused(404, "no decision with that sequence number")
    view = decision_view(record)
    citations = {rule.id: rule.citation for _, rule in policy.bundle.rules}
    audit(request, user, "view decision", subject=record.subject)
    return page(request, user, "decision.html", "decisions", record=record, view=view,
                citations=citations, place=chain_place(record, reader, verify_jobs(request)),
                bundle_in_force=policy.version)
