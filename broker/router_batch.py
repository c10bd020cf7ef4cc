"""The router's per-batch working values: what a batch accumulates before one write, and
what every decision sharing one compiled outcome has in common."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from broker.audit import AuditEntry
from broker.delivery.envelope import EnvelopeConstants
from broker.log.port import NewRecord
from broker.view_schemas import ViewSchemas
from policy import Decision, FieldDecision, ReasonCode
from policy.decision import DecisionPlan


@dataclass(frozen=True, slots=True)
class OutcomeFacts:
    """What every decision sharing one compiled policy outcome has in common, computed
    once: metric labels for withheld fields and the encoded envelope lists."""

    fields: tuple[FieldDecision, ...]
    """Held so the identity the cache is keyed by stays valid."""
    withheld_reasons: tuple[tuple[ReasonCode, int], ...]
    withheld_json: bytes
    obligations_json: bytes

    @classmethod
    def of(cls, decision: Decision) -> OutcomeFacts:
        counts: dict[ReasonCode, int] = defaultdict(int)
        for f in decision.fields:
            if f.status == "withheld":
                counts[f.code] += 1
        return cls(
            fields=decision.fields,
            withheld_reasons=tuple(counts.items()),
            withheld_json=json.dumps(list(decision.withheld)).encode(),
            obligations_json=json.dumps(
                [o.to_dict() for o in decision.obligations]).encode(),
        )


@dataclass(frozen=True, slots=True)
class PlanFacts:
    """What the router writes alike for every decision of one compiled plan, worked out
    at its first decision: the metric keys, the view schema id and the envelope's
    shared headers. Held with the plan and the view schemas it was made for, so a
    cache keyed by the plan's identity can tell a live entry from a reused id."""

    plan: DecisionPlan
    views: ViewSchemas
    event_type: str
    version: int
    source: str
    decision_key: tuple[str, str]
    withheld_keys: tuple[tuple[tuple[str, ReasonCode], int], ...]
    view_id: int | None
    """None when the plan releases no view (it denies, or projects nothing)."""
    envelope: EnvelopeConstants

    @classmethod
    def of(cls, decision: Decision, outcome: OutcomeFacts, views: ViewSchemas,
           event_type: str, version: int, source: str) -> PlanFacts:
        plan = decision.plan
        sub_id = plan.subscription_id
        releases = plan.outcome == "permit" and plan.project is not None
        return cls(
            plan=plan, views=views, event_type=event_type, version=version, source=source,
            decision_key=(sub_id, plan.outcome),
            withheld_keys=tuple(((sub_id, reason), count)
                                for reason, count in outcome.withheld_reasons),
            view_id=views.schema_id(sub_id, event_type, version) if releases else None,
            envelope=EnvelopeConstants.of(event_type, source, outcome.withheld_json,
                                          outcome.obligations_json),
        )

    def fits(self, plan: DecisionPlan, views: ViewSchemas, event_type: str, version: int,
             source: str) -> bool:
        return (self.plan is plan and self.views is views and self.version == version
                and self.event_type == event_type and self.source == source)


@dataclass
class RouterBatch:
    """What one router batch accumulates before it is written: audit entries, counts,
    deliveries and quarantine records per topic, latencies, and the offsets to commit."""

    audit: list[AuditEntry] = field(default_factory=list)
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)
    withheld: Counter[tuple[str, ReasonCode]] = field(default_factory=Counter)
    deliveries: dict[str, list[NewRecord]] = field(default_factory=lambda: defaultdict(list))
    quarantine: list[NewRecord] = field(default_factory=list)
    latencies: list[tuple[str, int]] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
