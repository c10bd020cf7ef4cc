"""Explain: what a subscription would receive of one event, and why, without delivering.

One function serves every caller (`handoff policy explain`, `POST /v1/explain`); each
caller states the decision time it uses and when each consent counts as known:

- the CLI decides at `--at`, by default the event's `occurred_at`, and counts each
  consent from its own `occurred_at`;
- the API decides at the request's `at`, by default the moment of the request, and
  counts every consent of the request from that decision time.

Only the consents given are used, never a live consent view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policy.consent import ConsentView
from policy.decision import Decision
from policy.engine import PolicyEngine
from policy.errors import PolicyError
from schemas.jsonform import record_to_json


class InvalidConsentError(PolicyError):
    """A consent given to explain cannot be used; `index` says which one."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class Explanation:
    decision: Decision
    view: dict[str, Any] | None
    """The record the subscriber would receive, as JSON; None when denied."""
    view_schema: dict[str, Any] | None
    """The Avro schema (JSON form) the view is written with; None when denied."""


def explain(engine: PolicyEngine, event_type: str, schema_version: int,
            event: Mapping[str, Any], source: str, subscription_id: str, *,
            at_ms: int, consents: Iterable[tuple[Mapping[str, Any], int]] = (),
            consents_recorded_by: str | None = None) -> Explanation:
    """Decide what `subscription_id` would receive of `event` (fastavro form), published
    by `source`, at the decision time `at_ms`.

    `consents` are (consent record, the time it counts as ingested) pairs, applied in
    order, each taken as recorded by `consents_recorded_by` (default: `source`); an
    unusable one raises `InvalidConsentError` naming its index.
    """
    recorded_by = consents_recorded_by or source
    view = ConsentView()
    for index, (consent, ingested_at_ms) in enumerate(consents):
        try:
            view.apply(consent, ingested_at_ms, recorded_by)
        except PolicyError as exc:
            raise InvalidConsentError(index, str(exc)) from exc
    decision = engine.decide(event_type, schema_version, event, source, subscription_id,
                             view, at_ms)
    if decision.view is None:
        return Explanation(decision, None, None)
    schema = engine.view_schema(subscription_id, event_type, schema_version)
    return Explanation(decision, record_to_json(schema, decision.view), schema)
