"""Consents for one person: each grant with its terms, who recorded it, whether it was
revoked or has expired, refused attempts, and the releases that relied on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from broker.api import dependencies as deps
from broker.audit import AuditFilter, AuditReader, Disclosure
from broker.audit.explanation import ConsentChangeView, consent_change_view
from broker.console.person import subjects
from broker.console.render import page
from broker.console.security import ConsoleUser, audit, console_user

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class ConsentHistory:
    """One consent (a recording agency and its consent id) as the log tells it."""

    relied_on_as: str
    grant: ConsentChangeView | None
    changes: tuple[ConsentChangeView, ...]
    status: str
    """`granted`, `revoked` or `expired` (`refused` when nothing was ever accepted)."""
    releases: tuple[Disclosure, ...]


def _expired(change: ConsentChangeView, now_ms: int) -> bool:
    if not change.expires_at:
        return False
    try:
        moment = datetime.fromisoformat(change.expires_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    return moment.timestamp() * 1000 <= now_ms


def histories(changes: list[ConsentChangeView], disclosures: list[Disclosure], now_ms: int
              ) -> list[ConsentHistory]:
    grouped: dict[str, list[ConsentChangeView]] = {}
    for change in changes:
        key = change.relied_on_as or f"?/{change.consent_id}"
        grouped.setdefault(key, []).append(change)
    found = []
    for key, items in grouped.items():
        accepted = [c for c in items if c.outcome in ("granted", "revoked")]
        grant = next((c for c in reversed(accepted) if c.outcome == "granted"), None)
        last = accepted[-1] if accepted else None
        if last is None:
            status = "refused"
        elif last.outcome == "revoked":
            status = "revoked"
        else:
            status = "expired" if _expired(last, now_ms) else "granted"
        releases = tuple(d for d in disclosures if key in d.consent_ids)
        found.append(ConsentHistory(key, grant, tuple(items), status, releases))
    return found


@router.get("/console/consents")
def consents(request: Request, subject: str | None = None, also: str | None = None,
             user: ConsoleUser = Depends(console_user),
             reader: AuditReader = Depends(deps.audit_reader)) -> Response:
    pseudonyms = subjects(subject, also)
    pseudonym = pseudonyms[0] if pseudonyms else None
    found: list[ConsentHistory] = []
    if pseudonyms:
        records = {r.seq: r for p in pseudonyms for r in reader.iter_records(
            AuditFilter(subject=p, kind="consent_change"))}
        changes = [consent_change_view(records[seq]) for seq in sorted(records)]
        released = {d.seq: d for p in pseudonyms
                    for d in reader.disclosures(AuditFilter(subject=p))}
        found = histories(changes, [released[seq] for seq in sorted(released)],
                          deps.clock(request)())
    audit(request, user, "view consents", subject=pseudonym)
    return page(request, user, "consents.html", "consents", subject=pseudonym,
                histories=found)
