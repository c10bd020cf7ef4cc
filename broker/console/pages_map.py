"""The sharing map: agencies as nodes, agreements in force as edges, with what each
agreement carried over a chosen period; an edge opens the agreement and its decisions."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from broker.api import dependencies as deps
from broker.audit import AuditFilter, AuditReader
from broker.audit.explanation import decision_view
from broker.console.errors import ConsoleRefused
from broker.console.map_layout import layout
from broker.console.render import page
from broker.console.security import ConsoleUser, audit, console_user
from broker.policy_holder import LoadedPolicy
from policy import Agreement

router = APIRouter(include_in_schema=False)
DAY_MS = 86_400_000
PERIODS = (7, 30, 90, 365)
EXPIRY_WARNING_DAYS = 90


@dataclass(frozen=True, slots=True)
class EdgeFacts:
    agreement: Agreement
    days_left: int | None
    """Whole days until the agreement expires (None: open-ended)."""
    released: int
    """Permitted decisions in the period."""
    transformed: int
    """Of those, decisions under a plan that transforms fields (judged by the latest
    permitted decision: the plan changes only with the bundle or the consents)."""
    withheld: int
    """Denied decisions in the period."""

    @property
    def warn(self) -> bool:
        return self.days_left is not None and self.days_left < EXPIRY_WARNING_DAYS


def _in_force(agreement: Agreement, now_ms: int) -> bool:
    expires = agreement.expires_ms
    return agreement.effective_ms <= now_ms and (expires is None or now_ms < expires)


def _days_left(agreement: Agreement, now_ms: int) -> int | None:
    expires = agreement.expires_ms
    return None if expires is None else max(0, (expires - now_ms) // DAY_MS)


def _transforms(reader: AuditReader, agreement_id: str) -> bool:
    latest = reader.page(AuditFilter(kind="decision", agreement=agreement_id,
                                     outcome="permit"), limit=1, newest_first=True)
    return any(bool(decision_view(r).with_status("transformed")) for r in latest.records)


def edge_facts(reader: AuditReader, agreements: list[Agreement], now_ms: int, days: int
               ) -> list[EdgeFacts]:
    counts = reader.count(AuditFilter(kind="decision", since_ms=now_ms - days * DAY_MS),
                          by=("agreement", "outcome"))
    by_key = {(c.group[0], c.group[1]): c.count for c in counts}
    facts = []
    for agreement in agreements:
        released = by_key.get((agreement.id, "permit"), 0)
        transformed = released if released and _transforms(reader, agreement.id) else 0
        facts.append(EdgeFacts(agreement, _days_left(agreement, now_ms), released,
                               transformed, by_key.get((agreement.id, "deny"), 0)))
    return facts


def _period(days: int) -> int:
    return days if days in PERIODS else 30


@router.get("/console/map")
def sharing_map(request: Request, days: int = Query(default=30),
                user: ConsoleUser = Depends(console_user),
                reader: AuditReader = Depends(deps.audit_reader),
                policy: LoadedPolicy = Depends(deps.policy)) -> Response:
    days = _period(days)
    now = deps.clock(request)()
    bundle = policy.bundle
    active = sorted((a for a in bundle.agreements.values() if _in_force(a, now)),
                    key=lambda a: (a.source, a.recipient, a.id))
    facts = edge_facts(reader, active, now, days)
    drawn = layout(sorted(bundle.agencies), [(a.id, a.source, a.recipient) for a in active])
    audit(request, user, "view sharing map")
    return page(request, user, "map.html", "map", days=days, periods=PERIODS,
                facts=facts, facts_by_id={f.agreement.id: f for f in facts}, drawn=drawn,
                agencies=bundle.agencies, version=bundle.version)


@router.get("/console/map/agreements/{agreement_id}")
def agreement_page(agreement_id: str, request: Request, days: int = Query(default=30),
                   user: ConsoleUser = Depends(console_user),
                   reader: AuditReader = Depends(deps.audit_reader),
                   policy: LoadedPolicy = Depends(deps.policy)) -> Response:
    days = _period(days)
    agreement = policy.bundle.agreements.get(agreement_id)
    if agreement is None:
        raise ConsoleRefused(404, "no agreement with that id in the policy in force")
    now = deps.clock(request)()
    (facts,) = edge_facts(reader, [agreement], now, days)
    recent = reader.page(AuditFilter(kind="decision", agreement=agreement_id), limit=20,
                         newest_first=True)
    audit(request, user, "view agreement")
    return page(request, user, "agreement.html", "map", agreement=agreement, facts=facts,
                days=days, recent=recent.records, agencies=policy.bundle.agencies,
                in_force=_in_force(agreement, now))
