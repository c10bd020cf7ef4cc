"""The router's per-batch working values: what a batch accumulates before one write, and
what every decision sharing one compiled outcome has in common."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from broker.audit import AuditEntry
from broker.audit.plans import DecisionDetail
from broker.audit.records import compiled_entry
from broker.delivery.envelope import (
    H_DECISION_ID,
    H_EVENT_ID,
    H_INGESTED_AT,
    H_OCCURRED_AT,
    EnvelopeConstants,
)
from broker.log.port import Headers, NewRecord
from broker.policy_holder import LoadedPolicy
from broker.view_schemas import ViewSchemas
from policy import Decision, ReasonCode
from policy.decision import DecisionPlan, Projector, compact_event_part, compact_linked_part
from schemas.wire import HEADER, HEADER_SIZE, MAGIC_BYTE, WireCodec


@dataclass(frozen=True, slots=True)
class OutcomeFacts:
    """What every decision sharing one compiled policy outcome has in common, computed
    once: metric labels for withheld fields and the encoded envelope lists."""

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
            withheld_reasons=tuple(counts.items()),
            withheld_json=json.dumps(list(decision.withheld)).encode(),
            obligations_json=json.dumps(
                [o.to_dict() for o in decision.obligations]).encode(),
        )


@dataclass(frozen=True, slots=True, eq=False)
class PlanFacts:
    """What the router writes alike for every decision of one compiled plan, worked out
    at its first decision: the metric keys, the view schema id and the envelope's
    shared headers. Held with the plan and the view schemas it was made for, so a
    cache keyed by the plan's identity can tell a live entry from a reused id. Equal
    only to itself: a batch counts its decisions per plan by these."""

    plan: DecisionPlan
    views: ViewSchemas
    event_type: str
    version: int
    source: str
    decision_key: tuple[str, str]
    withheld_keys: tuple[tuple[tuple[str, ReasonCode], int], ...]
    view_id: int | None
    """None when the plan releases no view (it denies, or projects nothing)."""
    view_shape: str | None
    """The view schema as its binary encoding sees it (`view_shape`), when released."""
    envelope: EnvelopeConstants
    view_encoder: Callable[[Mapping[str, Any]], bytes] | None
    """`WireCodec.encoder(view_id)`, when released: the view's wire bytes."""

    @classmethod
    def of(cls, decision: Decision, policy: LoadedPolicy, event_type: str, version: int,
           source: str, codec: WireCodec) -> PlanFacts:
        plan = decision.plan
        outcome = OutcomeFacts.of(decision)
        sub_id = plan.subscription_id
        releases = plan.outcome == "permit" and plan.project is not None
        view_id = policy.views.schema_id(sub_id, event_type, version) if releases else None
        return cls(
            plan=plan, views=policy.views, event_type=event_type, version=version,
            source=source, decision_key=(sub_id, plan.outcome),
            withheld_keys=tuple(((sub_id, reason), count)
                                for reason, count in outcome.withheld_reasons),
            view_id=view_id,
            view_shape=view_shape(policy.engine.view_schema(sub_id, event_type, version))
            if releases else None,
            envelope=EnvelopeConstants.of(event_type, source, outcome.withheld_json,
                                          outcome.obligations_json),
            view_encoder=codec.encoder(view_id) if view_id is not None else None,
        )

    def fits(self, plan: DecisionPlan, views: ViewSchemas, event_type: str, version: int,
             source: str) -> bool:
        return (self.plan is plan and self.views is views and self.version == version
                and self.event_type == event_type and self.source == source)

    def record(self, decision: Decision, event: EventParts, batch: RouterBatch) -> None:
        """Queue one decision of this plan: its audit entry, its count, and its delivery
        when the plan releases a view. Only what varies per decision is worked out here:
        the event's parts come from `event`, the plan's from these facts."""
        plan = self.plan
        decision_id = decision.decision_id
        # Built from compiled values: the plan is stored once per chain, the record
        # carries what varies per event (docs/audit.md).
        batch.audit.append(compiled_entry(
            "decision", event.at_ms, event.subject, plan.recipient, event.source,
            plan.agreement_id, plan.subscription_id, plan.outcome, event.event_id,
            decision_id, event.actor,
            DecisionDetail(decision.compact_json_of(event.compact, event.compact_linked),
                           plan.digest, plan.canonical_json),
        ))
        batch.plans[self] += 1
        if self.view_id is None:
            return
        encoded = encoded_view(self, decision, batch)
        if encoded is None:
            return
        envelope = self.envelope
        headers: Headers = (event.event_id_header, (H_DECISION_ID, decision_id.encode()),
                            envelope.event_type, envelope.source, event.occurred_at_header,
                            event.ingested_at_header, envelope.withheld,
                            envelope.obligations)
        batch.deliveries[plan.subscription_id].append(
            NewRecord(encoded, event.key, headers))
        batch.latencies[plan.subscription_id].append(event.at_ms)


class EventParts(NamedTuple):
    """What every decision of one event writes alike, worked out once per event (not
    once per subscription): audit values, the delivery key and the per-event headers,
    the event's part of the compact decision record."""

    at_ms: int
    """The ingest time: the decision time and the audit entry's time."""
    subject: str
    """The subject's pseudonym: audited, and the delivery key."""
    source: str
    event_id: str
    actor: str
    key: bytes
    event_id_header: tuple[str, bytes]
    occurred_at_header: tuple[str, bytes]
    ingested_at_header: tuple[str, bytes]
    compact: str
    """`compact_event_part(at_ms, event_id)`."""
    compact_linked: str
    """`compact_linked_part(subject_record)`."""

    @classmethod
    def of(cls, at_ms: int, subject: str, source: str, event_id: str, actor: str,
           occurred_at: object, subject_record: str | None) -> EventParts:
        return cls(at_ms, subject, source, event_id, actor, subject.encode(),
                   (H_EVENT_ID, event_id.encode()),
                   (H_OCCURRED_AT, str(event_millis(occurred_at)).encode()),
                   (H_INGESTED_AT, str(at_ms).encode()),
                   compact_event_part(at_ms, event_id), compact_linked_part(subject_record))


def view_shape(schema: Mapping[str, Any]) -> str:
    """A view schema (JSON form) without what its binary encoding ignores and views of
    one event type differ by: the top-level namespace (named after the subscription;
    named types inside use short names under it) and every `doc`. Two view schemas of
    equal shape write equal records to equal bytes."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (v if k == "default" else strip(v)) for k, v in node.items()
                    if k != "doc"}
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node
    return json.dumps(strip({k: v for k, v in schema.items() if k != "namespace"}),
                      sort_keys=True)


_PLAIN = frozenset({str, int, float, bool, bytes, type(None), dt.date})
_DATETIME = dt.datetime


def same_record(a: Any, b: Any) -> bool:
    """Whether two projected views hold the same values of the same types, keys in the
    same order: equal bytes under one schema (1 == True == 1.0 are not the same here).
    Values of any other type are never the same, so such views are encoded apart. A
    loop rather than a recursion: most values of two views of one event are the same
    objects, and this runs for every view a subscription shares with another."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if x is y:
            continue
        kind = type(x)
        if kind is not type(y):
            return False
        if kind is dict:
            if len(x) != len(y) or list(x) != list(y):
                return False
            for key, value in x.items():
                other = y[key]
                if value is other:
                    continue
                inner = type(value)
                if inner in _PLAIN:
                    if inner is not type(other) or value != other:
                        return False
                else:
                    pending.append((value, other))
        elif kind is list or kind is tuple:
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif kind is _DATETIME:
            if x != y or x.tzinfo is not y.tzinfo:
                return False
        elif kind not in _PLAIN or x != y:
            return False
    return True


def encoded_view(facts: PlanFacts, decision: Decision, batch: RouterBatch) -> bytes | None:
    """A decision's view in wire format, by the plan's view encoder (None when it has
    none). Encoded once per event for views of equal shape and values (two subscriptions
    released the same fields alike): the bytes after the header are then the same, only
    the schema id in the header differs. Views of one event by one projection function
    (the engine shares it between plans that project alike) are equal without being
    projected again or compared."""
    assert (facts.view_id is not None and facts.view_shape is not None
            and facts.view_encoder is not None)
    project = facts.plan.project
    for shape, projected_by, _other, encoded in batch.event_views:
        if projected_by is project and shape == facts.view_shape:
            return HEADER.pack(MAGIC_BYTE, facts.view_id) + encoded[HEADER_SIZE:]
    view = decision.view
    if view is None:
        return None
    for shape, _projected_by, other, encoded in batch.event_views:
        if shape == facts.view_shape and same_record(other, view):
            return HEADER.pack(MAGIC_BYTE, facts.view_id) + encoded[HEADER_SIZE:]
    encoded = facts.view_encoder(view)
    batch.event_views.append((facts.view_shape, project, view, encoded))
    return encoded


@dataclass
class RouterBatch:
    """What one router batch accumulates before it is written: audit entries, counts,
    deliveries and quarantine records per topic, latencies, and the offsets to commit."""

    audit: list[AuditEntry] = field(default_factory=list)
    plans: Counter[PlanFacts] = field(default_factory=Counter)
    """Decisions per plan: the decision and withheld-field metrics, counted once a batch."""
    deliveries: dict[str, list[NewRecord]] = field(default_factory=lambda: defaultdict(list))
    quarantine: list[NewRecord] = field(default_factory=list)
    latencies: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    """The ingest times of the views delivered, per subscription."""
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    event_views: list[tuple[str, Projector | None, dict[str, Any], bytes]] = field(
        default_factory=list)
    """The views of the event being decided, encoded so far: (shape, the projection that
    made the view, view, wire bytes)."""


def event_millis(value: object) -> int:
    """An event's `occurred_at` (timestamp-millis: an int, or a datetime from fastavro)."""
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    return 0
