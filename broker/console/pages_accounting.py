"""The accounting of disclosures for one person: a printable table, a CSV and a PDF."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from broker.api import dependencies as deps
from broker.audit import AuditFilter, AuditReader, Disclosure
from broker.console.accounting_files import accounting_csv, accounting_pdf
from broker.console.errors import ConsoleRefused
from broker.console.person import subjects
from broker.console.render import day_start_ms, page
from broker.console.security import ConsoleUser, audit, console_user

router = APIRouter(include_in_schema=False)


def _disclosures(reader: AuditReader, pseudonyms: tuple[str, ...], since: str | None,
                 until: str | None) -> list[Disclosure]:
    """Every disclosure filed under any of the person's pseudonyms, oldest first."""
    found: dict[int, Disclosure] = {}
    for pseudonym in pseudonyms:
        for item in reader.disclosures(AuditFilter(
                subject=pseudonym, since_ms=day_start_ms(since),
                until_ms=day_start_ms(until, after=True))):
            found[item.seq] = item
    return [found[seq] for seq in sorted(found)]


def _period(since: str | None, until: str | None) -> str:
    if day_start_ms(since) is None and day_start_ms(until) is None:
        return "everything recorded"
    return f"{since or 'the start'} to {until or 'now'} (UTC, inclusive)"


@router.get("/console/accounting")
def accounting(request: Request, subject: str | None = None, also: str | None = None,
               since: str | None = None, until: str | None = None,
               user: ConsoleUser = Depends(console_user),
               reader: AuditReader = Depends(deps.audit_reader)) -> Response:
    pseudonyms = subjects(subject, also)
    pseudonym = pseudonyms[0] if pseudonyms else None
    found = _disclosures(reader, pseudonyms, since, until)
    audit(request, user, "view accounting of disclosures", subject=pseudonym)
    return page(request, user, "accounting.html", "accounting", subject=pseudonym,
                also=pseudonyms[1] if len(pseudonyms) > 1 else None,
                disclosures=found, since=since or "", until=until or "",
                period=_period(since, until))


def _required(subject: str | None, also: str | None) -> tuple[str, ...]:
    pseudonyms = subjects(subject, also)
    if not pseudonyms:
        raise ConsoleRefused(422, "choose a person first")
    return pseudonyms


@router.get("/console/accounting.csv")
def accounting_as_csv(request: Request, subject: str | None = None,
                      also: str | None = None, since: str | None = None,
                      until: str | None = None, user: ConsoleUser = Depends(console_user),
                      reader: AuditReader = Depends(deps.audit_reader)) -> Response:
    pseudonyms = _required(subject, also)
    pseudonym = pseudonyms[0]
    body = accounting_csv(_disclosures(reader, pseudonyms, since, until))
    audit(request, user, "download accounting (CSV)", subject=pseudonym)
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="accounting-{pseudonym}.csv"'})


@router.get("/console/accounting.pdf")
def accounting_as_pdf(request: Request, subject: str | None = None,
                      also: str | None = None, since: str | None = None,
                      until: str | None = None, user: ConsoleUser = Depends(console_user),
                      reader: AuditReader = Depends(deps.audit_reader)) -> Response:
    pseudonyms = _required(subject, also)
    pseudonym = pseudonyms[0]
    body = accounting_pdf(_disclosures(reader, pseudonyms, since, until), pseudonym,
                          _period(since, until), deps.clock(request)(),
                          user.principal.key_id)
    audit(request, user, "download accounting (PDF)", subject=pseudonym)
    return Response(body, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="accounting-{pseudonym}.pdf"'})
