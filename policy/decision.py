"""Decisions: what one subscriber may receive of one event, and why.

A `Decision` is a value (the OPA idea): the broker enforces it, the audit log stores its
`to_dict()`, a test compares it. Everything that depends only on the bundle, schema,
subscription, agreement and which consent requirements held is computed once into a
shared `DecisionPlan`; a decision adds the event id, decision time and consent ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from json.encoder import encode_basestring_ascii
from typing import Any, Literal

from policy.model import Obligation

Outcome = Literal["permit", "deny"]
FieldStatus = Literal["released", "transformed", "withheld"]
Projector = Callable[[Mapping[str, Any], Mapping[str, str]], dict[str, Any]]
"""(source record, linked person ids by field path) -> the view record."""


class ReasonCode(StrEnum):
    """Why a field has its status, as one of a closed set of codes.

    `reason` explains a field to a person; the code is for machines: it is the `reason`
    label of `handoff_fields_withheld_total`, and tools can group by it.
    """

    RELEASED = "released"
    """Released as it is, under the agreement (with consent, where some was required)."""
    TRANSFORMED = "transformed"
    """Released transformed (generalised, masked, pseudonymised)."""
    NOT_IN_AGREEMENT = "agreement"
    """The agreement does not list the field."""
    DENIED = "denied"
    """A rule denies the field."""
    PURPOSE = "purpose"
    """A rule allows the field only for other purposes."""
    DROPPED = "drop"
    """A `drop` transform (the agreement's or a rule's) removes the field."""
    CONSENT = "consent"
    """Consent is required and none in force covers it (field or whole record): none
    naming the recipient, purpose and categories and the discloser the rule asks for,
    recorded by an agency the source relies on (`agencies.yaml` `consents.relies_on`)."""
    NO_AGREEMENT = "no_agreement"
    """No agreement is in force for this source, recipient, purpose and time."""
    NOT_SUBSCRIBED = "not_subscribed"
    """The subscription does not receive this event type, or not from this source."""
    UNKNOWN_SOURCE = "unknown_source"
    """The source agency is not in the bundle."""
    NOT_A_PARTY = "not_a_party"
    """The record is about a referral the recipient is not a party to: a status of
    another agency's referral under a feedback agreement, an overdue alert of a referral
    it neither made nor received (`policy.release_conditions`)."""
    FEEDBACK = "feedback"
    """The referral terms' `feedback` does not send this status back to the referrer."""


@dataclass(frozen=True, slots=True)
class FieldDecision:
    """The fate of one leaf field of the source event, and why."""

    path: str
    status: FieldStatus
    transform: str | None
    """Label of the transform applied (`generalise:month`), when transformed."""
    reason: str
    """Why, for a person: the agreement, rules and consent involved."""
    code: ReasonCode
    """Why, as a code (see `ReasonCode`)."""
    rule_ids: tuple[str, ...] = ()
    agreement_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "status": self.status, "transform": self.transform,
            "reason": self.reason, "rule_ids": list(self.rule_ids),
            "agreement_id": self.agreement_id,
        }


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_PLAN_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_json_string = encode_basestring_ascii

PER_DECISION_KEYS = frozenset({
    "consent_ids", "decision_id", "decision_time_ms", "event_id", "subject_record"})
"""The keys of `Decision.to_dict()` that vary per event; every other key is the plan's
(`DecisionPlan.to_dict()`)."""


def _dumps(value: Any) -> str:
    return _CANONICAL.encode(value)


@dataclass(frozen=True)
class DecisionPlan:
    """The part of a decision shared by every event with the same compiled outcome."""

    outcome: Outcome
    deny_reason: str | None
    event_type: str
    schema_version: int
    source: str
    subscription_id: str
    recipient: str
    purpose: str
    agreement_id: str | None
    bundle_version: str
    fields: tuple[FieldDecision, ...]
    obligations: tuple[Obligation, ...] = ()
    legal_basis: tuple[str, ...] = ()
    project: Projector | None = None
    released: tuple[str, ...] = field(init=False)
    transformed: tuple[str, ...] = field(init=False)
    withheld: tuple[str, ...] = field(init=False)
    _json_head: str = field(init=False, repr=False)
    _json_middle: str = field(init=False, repr=False)
    _json_tail: str = field(init=False, repr=False)
    _json_last: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        def paths(status: str) -> tuple[str, ...]:
            return tuple(f.path for f in self.fields if f.status == status)

        object.__setattr__(self, "released", paths("released"))
        object.__setattr__(self, "transformed", paths("transformed"))
        object.__setattr__(self, "withheld", paths("withheld"))
        # Keys in sorted order, so the concatenation equals json.dumps(sort_keys=True).
        head = (f'{{"agreement_id":{_dumps(self.agreement_id)},'
                f'"bundle_version":{_dumps(self.bundle_version)},"consent_ids":')
        middle = f',"deny_reason":{_dumps(self.deny_reason)},"event_id":'
        tail_items = {
            "event_type": self.event_type,
            "fields": [f.to_dict() for f in self.fields],
            "legal_basis": list(self.legal_basis),
            "obligations": [o.to_dict() for o in self.obligations],
            "outcome": self.outcome, "purpose": self.purpose, "recipient": self.recipient,
            "released": list(self.released), "schema_version": self.schema_version,
            "source": self.source,
        }
        # `subject_record` (when a decision has one) sorts between these two parts.
        last_items = {
            "subscription_id": self.subscription_id,
            "transformed": list(self.transformed), "withheld": list(self.withheld),
        }
        object.__setattr__(self, "_json_head", head)
        object.__setattr__(self, "_json_middle", middle)
        object.__setattr__(self, "_json_tail", "," + _dumps(tail_items)[1:-1])
        object.__setattr__(self, "_json_last", "," + _dumps(last_items)[1:])

    def to_dict(self) -> dict[str, Any]:
        """What every decision of this plan shares: `Decision.to_dict()` without the
        keys in `PER_DECISION_KEYS`. JSON-ready, without any field value."""
        return {
            "agreement_id": self.agreement_id, "bundle_version": self.bundle_version,
            "deny_reason": self.deny_reason, "event_type": self.event_type,
            "fields": [f.to_dict() for f in self.fields],
            "legal_basis": list(self.legal_basis),
            "obligations": [o.to_dict() for o in self.obligations],
            "outcome": self.outcome, "purpose": self.purpose, "recipient": self.recipient,
            "released": list(self.released), "schema_version": self.schema_version,
            "source": self.source, "subscription_id": self.subscription_id,
            "transformed": list(self.transformed), "withheld": list(self.withheld),
        }

    @cached_property
    def canonical_json(self) -> str:
        """`to_dict()` as the audit log hashes it (sorted keys, no spaces, non-ASCII as
        UTF-8): the detail of the plan's `decision_plan` audit record. Encoded once."""
        return _PLAN_CANONICAL.encode(self.to_dict())

    @cached_property
    def digest(self) -> str:
        """The plan's identity: SHA-256 (hex) of `canonical_json` in UTF-8. A compact
        decision record names its plan by it."""
        return hashlib.sha256(self.canonical_json.encode("utf-8")).hexdigest()

    @cached_property
    def compact_plan_part(self) -> str:
        """What a compact decision record of this plan says of it: `,"plan":"<digest>"`."""
        return ',"plan":"' + self.digest + '"'


def compact_event_part(decision_time_ms: int, event_id: str) -> str:
    """What every compact decision record of one event (one decision time) writes alike,
    between its decision id and its plan (`Decision.compact_json_of`)."""
    return ('","decision_time_ms":' + str(int(decision_time_ms)) + ',"event_id":'
            + _json_string(event_id))


def compact_linked_part(subject_record: str | None) -> str:
    """The end of a compact decision record: `subject_record` (see
    `Decision.canonical_json`) when linked, and the closing brace."""
    return "}" if subject_record is None else \
        ',"subject_record":' + _json_string(subject_record) + "}"


def decision_id_for(event_id: str, subscription_id: str, bundle_version: str) -> str:
    """Deterministic: re-processing an event under the same bundle yields the same id."""
    key = f"{event_id}\x1f{subscription_id}\x1f{bundle_version}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


class Decision:
    """What one subscription may receive of one event, and why.

    `view` is the projected record (None when denied); it is built the first time it is
    read, so a decision that is only audited costs no projection. `to_dict()` holds
    paths, reasons and rule ids, never a field value: it goes to the audit log.
    """

    __slots__ = ("_decision_id", "_linked", "_plan", "_record", "_view", "consent_ids",
                 "decision_time_ms", "event_id")

    def __init__(
        self, plan: DecisionPlan, event_id: str, decision_time_ms: int,
        consent_ids: tuple[str, ...] = (), record: Mapping[str, Any] | None = None,
        linked_ids: Mapping[str, str] | None = None,
    ) -> None:
        self._plan = plan
        self.event_id = event_id
        self.decision_time_ms = decision_time_ms
        self.consent_ids = consent_ids
        self._record = record
        self._linked = linked_ids
        self._view: dict[str, Any] | None = None
        self._decision_id: str | None = None

    # -- shared parts ------------------------------------------------------------------

    @property
    def outcome(self) -> Outcome:
        return self._plan.outcome

    @property
    def deny_reason(self) -> str | None:
        return self._plan.deny_reason

    @property
    def event_type(self) -> str:
        return self._plan.event_type

    @property
    def schema_version(self) -> int:
        return self._plan.schema_version

    @property
    def source(self) -> str:
        return self._plan.source

    @property
    def subscription_id(self) -> str:
        return self._plan.subscription_id

    @property
    def recipient(self) -> str:
        return self._plan.recipient

    @property
    def purpose(self) -> str:
        return self._plan.purpose

    @property
    def agreement_id(self) -> str | None:
        return self._plan.agreement_id

    @property
    def bundle_version(self) -> str:
        return self._plan.bundle_version

    @property
    def fields(self) -> tuple[FieldDecision, ...]:
        """One entry for every leaf field of the source schema."""
        return self._plan.fields

    @property
    def released(self) -> tuple[str, ...]:
        return self._plan.released

    @property
    def transformed(self) -> tuple[str, ...]:
        return self._plan.transformed

    @property
    def withheld(self) -> tuple[str, ...]:
        return self._plan.withheld

    @property
    def obligations(self) -> tuple[Obligation, ...]:
        return self._plan.obligations

    @property
    def legal_basis(self) -> tuple[str, ...]:
        return self._plan.legal_basis

    # -- per-event parts ---------------------------------------------------------------

    @property
    def decision_id(self) -> str:
        found = self._decision_id
        if found is None:
            found = self._decision_id = decision_id_for(
                self.event_id, self._plan.subscription_id, self._plan.bundle_version)
        return found

    @property
    def view(self) -> dict[str, Any] | None:
        """The record the subscriber receives, writable with the view schema."""
        if self._view is None and self._plan.project is not None and self._record is not None:
            self._view = self._plan.project(self._record, self._linked or {})
            self._record = None
        return self._view

    def field(self, path: str) -> FieldDecision:
        """The entry for one field path."""
        for entry in self._plan.fields:
            if entry.path == path:
                return entry
        raise KeyError(path)

    def to_dict(self, subject_record: str | None = None) -> dict[str, Any]:
        """JSON-ready, without any field value. `subject_record`: see `canonical_json`."""
        linked = {} if subject_record is None else {"subject_record": subject_record}
        return {**linked, **self._plan.to_dict(),
                "consent_ids": list(self.consent_ids), "decision_id": self.decision_id,
                "decision_time_ms": self.decision_time_ms, "event_id": self.event_id}

    def canonical_json(self, subject_record: str | None = None) -> str:
        """`to_dict()` as canonical JSON (sorted keys, no spaces), built from fragments
        encoded once per plan: the cheap input for an audit hash.

        `subject_record`: with record linkage, the audit pseudonym of the agency record
        the event's subject was resolved from (stable, unlike the person it links to);
        the accounting of disclosures for a person reads it."""
        plan = self._plan
        consents = _dumps(list(self.consent_ids)) if self.consent_ids else "[]"
        linked = "" if subject_record is None else \
            ',"subject_record":' + _json_string(subject_record)
        return (plan._json_head + consents + ',"decision_id":"' + self.decision_id
                + '","decision_time_ms":' + str(int(self.decision_time_ms))
                + plan._json_middle + _json_string(self.event_id) + plan._json_tail
                + linked + plan._json_last)

    @property
    def plan(self) -> DecisionPlan:
        """The shared part of this decision."""
        return self._plan

    def compact_json(self, subject_record: str | None = None) -> str:
        """What varies per event, as canonical JSON, naming the plan by its digest:
        `{"consent_ids", "decision_id", "decision_time_ms", "event_id", "plan"` and
        `"subject_record"` when linked`}`. The plan's `to_dict()` merged with this (less
        `plan`) is exactly `to_dict(subject_record)`."""
        return self.compact_json_of(compact_event_part(self.decision_time_ms, self.event_id),
                                    compact_linked_part(subject_record))

    def compact_json_of(self, event_part: str, linked_part: str) -> str:
        """`compact_json()` from the parts every decision of one event shares, worked out
        once for all of them: `compact_event_part(decision_time_ms, event_id)` and
        `compact_linked_part(subject_record)` of this decision's time and event id."""
        consents = _dumps(list(self.consent_ids)) if self.consent_ids else "[]"
        return ('{"consent_ids":' + consents + ',"decision_id":"' + self.decision_id
                + event_part + self._plan.compact_plan_part + linked_part)

    def __repr__(self) -> str:
        plan = self._plan
        return (f"Decision({plan.outcome}, subscription={plan.subscription_id!r}, "
                f"event={self.event_id!r}, agreement={plan.agreement_id!r}, "
                f"released={len(plan.released)}, transformed={len(plan.transformed)}, "
                f"withheld={len(plan.withheld)})")
