"""A policy dry-run: what recent events would have released under a changed bundle.

`PolicyTrial.run` reads the most recent events of every ingress topic in a window,
decides each of them for every matching subscription under the policy in force and
under the candidate bundle, at the instant the broker routed it and with the consent
view the router keeps, and counts what differs: fields released that were not (more),
fields no longer released (fewer), transforms that change, decisions that become
denials or releases, obligations that appear. Nothing is delivered or audited; the
report names agreements, subscriptions and field paths, never a value.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.consent_feed import ConsentFeed
from broker.event_types import EventTypes
from broker.log.port import EventLog, LogRecord
from broker.policy_holder import PolicyHolder
from broker.topics import H_INGEST_SOURCE, ingress_topic
from policy import Decision, PolicyBundle, PolicyEngine, load_bundle
from schemas.errors import HandoffError
from schemas.wire import WireCodec

MAX_TRIAL_EVENTS = 20_000
"""The most events one dry-run decides again (the newest within its window)."""
_READ_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field whose fate changes for one subscription under one agreement."""

    subscription: str
    agreement: str | None
    path: str
    change: str
    """`more` (now disclosed), `fewer` (no longer disclosed) or `transform` (disclosed
    differently: `before` and `after` name the transforms)."""
    events: int
    before: str | None = None
    after: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionChange:
    """Decisions of one subscription that change outcome, or gain an obligation."""

    subscription: str
    agreement: str | None
    change: str
    """`new denial`, `new release` or `new obligation <id>`."""
    events: int


@dataclass(frozen=True, slots=True)
class TrialReport:
    current_version: str
    candidate_version: str
    since_ms: int
    events: int
    """Events decided again."""
    decisions: int
    """Decisions compared (one per event and matching subscription, either bundle)."""
    changed: int
    """Decisions whose outcome, fields or obligations differ."""
    fields: tuple[FieldChange, ...]
    decisions_changed: tuple[DecisionChange, ...]
    undecodable: int = 0

    @property
    def unchanged(self) -> bool:
        return not self.fields and not self.decisions_changed


@dataclass(frozen=True, slots=True)
class _Event:
    event_type: str
    version: int
    source: str
    at_ms: int
    record: dict[str, Any]


def _disclosed(decision: Decision | None) -> dict[str, str | None]:
    if decision is None or decision.outcome != "permit":
        return {}
    return {f.path: f.transform for f in decision.fields
            if f.status in ("released", "transformed")}


def _obligations(decision: Decision | None) -> set[str]:
    if decision is None or decision.outcome != "permit":
        return set()
    return {o.id for o in decision.obligations}


class PolicyTrial:
    """Decides recent events under a candidate bundle and under the one in force."""

    def __init__(self, event_log: EventLog, codec: WireCodec, event_types: EventTypes,
                 policy: PolicyHolder, consents: ConsentFeed) -> None:
        self._log = event_log
        self._codec = codec
        self._types = event_types
        self._policy = policy
        self._consents = consents

    def load(self, directory: Path) -> PolicyBundle:
        """Load a candidate bundle folder; `policy.BundleError` names every mistake."""
        return load_bundle(directory, self._types.catalog)

    def run(self, candidate: PolicyBundle, since_ms: int,
            max_events: int = MAX_TRIAL_EVENTS) -> TrialReport:
        current = self._policy.current
        # Values are never looked at, so the candidate's pseudonyms need no stable key.
        trial = PolicyEngine(candidate, self._types.catalog, secrets.token_bytes(32))
        self._consents.catch_up()
        view = self._consents.view
        fields: Counter[tuple[str, str | None, str, str, str | None, str | None]] = Counter()
        outcomes: Counter[tuple[str, str | None, str]] = Counter()
        events, undecodable = self._recent(since_ms, min(max_events, MAX_TRIAL_EVENTS))
        decided = changed = 0
        for event in events:
            before = self._decide(current.engine, event, view)
            after = self._decide(trial, event, view)
            for sub_id in sorted(before.keys() | after.keys()):
                decided += 1
                if self._compare(sub_id, before.get(sub_id), after.get(sub_id), fields,
                                 outcomes):
                    changed += 1
        return TrialReport(
            current_version=current.version, candidate_version=candidate.version,
            since_ms=since_ms, events=len(events), decisions=decided, changed=changed,
            fields=tuple(FieldChange(sub, agreement, path, change, count, was, now)
                         for (sub, agreement, path, change, was, now), count
                         in sorted(fields.items(), key=lambda kv: (kv[0][0], kv[0][2]))),
            decisions_changed=tuple(
                DecisionChange(sub, agreement, change, count)
                for (sub, agreement, change), count in sorted(
                    outcomes.items(), key=lambda kv: (kv[0][0], kv[0][2]))),
            undecodable=undecodable)

    @staticmethod
    def _compare(sub_id: str, before: Decision | None, after: Decision | None,
                 fields: Counter[tuple[str, str | None, str, str, str | None, str | None]],
                 outcomes: Counter[tuple[str, str | None, str]]) -> bool:
        agreement = (after.agreement_id if after is not None else None) or (
            before.agreement_id if before is not None else None)
        was_permitted = before is not None and before.outcome == "permit"
        now_permitted = after is not None and after.outcome == "permit"
        differs = False
        if was_permitted and not now_permitted:
            outcomes[(sub_id, agreement, "new denial")] += 1
            differs = True
        elif now_permitted and not was_permitted:
            outcomes[(sub_id, agreement, "new release")] += 1
            differs = True
        old, new = _disclosed(before), _disclosed(after)
        for path in new.keys() - old.keys():
            fields[(sub_id, agreement, path, "more", None, new[path])] += 1
        for path in old.keys() - new.keys():
            fields[(sub_id, agreement, path, "fewer", old[path], None)] += 1
        for path in old.keys() & new.keys():
            if old[path] != new[path]:
                fields[(sub_id, agreement, path, "transform", old[path], new[path])] += 1
        for obligation in sorted(_obligations(after) - _obligations(before)):
            outcomes[(sub_id, agreement, f"new obligation {obligation}")] += 1
        return differs or old != new or _obligations(after) != _obligations(before)

    @staticmethod
    def _decide(engine: PolicyEngine, event: _Event, view: Any) -> dict[str, Decision]:
        try:
            return {
                sub.id: engine.decide(event.event_type, event.version, event.record,
                                      event.source, sub.id, view, event.at_ms)
                for sub in engine.subscriptions_for(event.event_type, event.source,
                                                    event.record)
            }
        except HandoffError:
            # The router quarantines what it cannot decide; a trial leaves it out.
            return {}

    def _recent(self, since_ms: int, limit: int) -> tuple[list[_Event], int]:
        """The newest `limit` events ingested at or after `since_ms`, oldest first."""
        found: list[_Event] = []
        undecodable = 0
        for record in self._records(since_ms, limit):
            source = record.header(H_INGEST_SOURCE)
            try:
                schema_id, value = self._codec.decode(record.value)
            except HandoffError:
                undecodable += 1
                continue
            registered = self._types.by_id(schema_id)
            if registered is None or source is None or not isinstance(value, dict):
                undecodable += 1
                continue
            found.append(_Event(registered.event_type, registered.version, source.decode(),
                                record.timestamp_ms, value))
        found.sort(key=lambda e: e.at_ms)
        return found[-limit:], undecodable

    def _records(self, since_ms: int, limit: int) -> Iterator[LogRecord]:
        for event_type in self._types.names():
            topic = ingress_topic(event_type)
            for partition in range(self._log.partitions(topic)):
                end = self._log.end_offset(topic, partition)
                position = max(0, end - limit)
                while position < end:
                    chunk = self._log.read(topic, partition, position, _READ_CHUNK)
                    if not chunk:
                        break
                    yield from (r for r in chunk if r.timestamp_ms >= since_ms)
                    position = chunk[-1].offset + 1
