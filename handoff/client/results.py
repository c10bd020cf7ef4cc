"""What the client returns: frozen values, never the raw HTTP answers.

JSON objects inside them (an event's `data`, a decision) are read-only mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

Json = object
"""A JSON value as decoded (dict, list, str, int, float, bool or None)."""


def frozen(value: object) -> Mapping[str, Json]:
    """A read-only view of a JSON object (an empty one for anything else)."""
    return MappingProxyType(dict(value) if isinstance(value, Mapping) else {})


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


@dataclass(frozen=True, slots=True)
class Placed:
    """Where an accepted event was appended. `duplicate`: this agency had already
    published the `event_id`, so nothing new was appended (a retry's answer)."""

    event_id: str
    topic: str
    partition: int
    offset: int
    duplicate: bool

    @classmethod
    def from_json(cls, body: Mapping[str, Json]) -> Placed:
        return cls(str(body["event_id"]), str(body["topic"]), int(str(body["partition"])),
                   int(str(body["offset"])), bool(body["duplicate"]))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event as a subscription receives it: the permitted `data` and what was
    `withheld`, with the `cursor` just after it."""

    event_id: str
    decision_id: str
    event_type: str
    source: str
    occurred_at: str
    ingested_at: str
    schema_id: int
    data: Mapping[str, Json]
    withheld: tuple[str, ...]
    obligations: tuple[Mapping[str, Json], ...]
    cursor: str

    @classmethod
    def from_json(cls, body: Mapping[str, Json]) -> Delivery:
        obligations = body.get("obligations")
        return cls(
            str(body["event_id"]), str(body["decision_id"]), str(body["event_type"]),
            str(body["source"]), str(body["occurred_at"]), str(body["ingested_at"]),
            int(str(body["schema_id"])), frozen(body.get("data")),
            _strings(body.get("withheld")),
            tuple(frozen(o) for o in (obligations if isinstance(obligations, list) else [])),
            str(body["cursor"]))


@dataclass(frozen=True, slots=True)
class Page:
    """Deliveries pulled after a cursor, and the cursor to pull from next."""

    deliveries: tuple[Delivery, ...]
    next_cursor: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """What a subscription would receive of an event, and why (`POST /v1/explain`)."""

    outcome: str
    decision: Mapping[str, Json]
    view: Mapping[str, Json] | None

    @property
    def withheld(self) -> tuple[str, ...]:
        return _strings(self.decision.get("withheld"))

    @classmethod
    def from_json(cls, body: Mapping[str, Json]) -> Explanation:
        decision = frozen(body.get("decision"))
        view = body.get("view")
        return cls(str(decision.get("outcome", "")), decision,
                   frozen(view) if isinstance(view, Mapping) else None)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit record as the audit API shows it (subjects only as pseudonyms)."""

    seq: int
    kind: str
    fields: Mapping[str, Json]

    @classmethod
    def from_json(cls, body: Mapping[str, Json]) -> AuditRecord:
        return cls(int(str(body.get("seq", 0))), str(body.get("kind", "")), frozen(body))


@dataclass(frozen=True, slots=True)
class DecisionPage:
    records: tuple[AuditRecord, ...]
    next_after: int
    """Pass back as `after` for the next page."""


@dataclass(frozen=True, slots=True)
class Disclosures:
    """The accounting of disclosures for one person, under the broker's pseudonym."""

    subject: str
    disclosures: tuple[Mapping[str, Json], ...]
