"""The router's per-batch working values: what a batch accumulates before one write, and
what every decision sharing one compiled outcome has in common."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from broker.audit import AuditEntry
from broker.log.port import NewRecord
from policy import Decision, FieldDecision, ReasonCode


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
