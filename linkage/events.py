"""Linkage events: the immutable, ordered decisions the person index is rebuilt from.

Every change to the index is one of these values, numbered by `seq` (1, 2, 3, ...).
Replaying them in order on an empty index rebuilds the same index, which is how the
Kafka deployment restores it from its decisions topic. The JSON encoding is stable: keys
sorted, no whitespace, a `v` version field; a decoder refuses what it does not know.

`RecordAdded` carries normalised identifying values (the index must compare them); every
other event carries only keys, person ids, labels and weights.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from typing import Literal

from linkage.errors import EventDecodeError
from linkage.identity import NormalisedIdentity
from linkage.scoring import FieldEvidence

LinkMethod = Literal[
    "new_person", "exact_name_dob", "probabilistic", "clerical", "provisional",
]
"""Why a record was assigned to a person. `provisional`: a new person while a review is open."""
ReviewDecision = Literal["same", "different"]
EVENT_VERSION = 1


@dataclass(frozen=True, slots=True)
class RecordAdded:
    """An agency record's identifying values were added (or replaced, if the key is known)."""

    seq: int
    at: dt.datetime
    record_key: str
    identity: NormalisedIdentity


@dataclass(frozen=True, slots=True)
class Linked:
    """A record was assigned to a person (a new one, or one it was matched to)."""

    seq: int
    at: dt.datetime
    record_key: str
    person_id: str
    method: LinkMethod
    match_weight: float | None = None
    evidence: tuple[FieldEvidence, ...] = ()
    by: str | None = None
    """Who decided, for clerical links; None for the engine."""


@dataclass(frozen=True, slots=True)
class ReviewOpened:
    """A record's best candidate was uncertain; a clerk must say whether they are one person."""

    seq: int
    at: dt.datetime
    review_id: str
    record_key: str
    candidate_person_id: str
    match_weight: float
    evidence: tuple[FieldEvidence, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class ReviewResolved:
    """A clerk decided a review item. A `same` decision is followed by a `Linked` event."""

    seq: int
    at: dt.datetime
    review_id: str
    decision: ReviewDecision
    by: str


@dataclass(frozen=True, slots=True)
class Unlinked:
    """A record was taken off a person and given to another (usually a new) person."""

    seq: int
    at: dt.datetime
    record_key: str
    from_person_id: str
    to_person_id: str
    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class Merged:
    """Every record of one person moved to another; the old id now redirects to the new."""

    seq: int
    at: dt.datetime
    from_person_id: str
    into_person_id: str
    record_keys: tuple[str, ...]
    by: str
    reason: str


LinkageEvent = RecordAdded | Linked | ReviewOpened | ReviewResolved | Unlinked | Merged

_KINDS: dict[type, str] = {
    RecordAdded: "record_added", Linked: "linked", ReviewOpened: "review_opened",
    ReviewResolved: "review_resolved", Unlinked: "unlinked", Merged: "merged",
}
_BY_KIND = {kind: cls for cls, kind in _KINDS.items()}


def event_kind(event: LinkageEvent) -> str:
    return _KINDS[type(event)]


def _evidence_out(evidence: tuple[FieldEvidence, ...]) -> list[list[object]]:
    return [[e.field, e.level, e.weight] for e in evidence]


def _evidence_in(raw: object) -> tuple[FieldEvidence, ...]:
    if not isinstance(raw, list):
        raise EventDecodeError("evidence must be a list")
    return tuple(FieldEvidence(str(f), str(level), float(w)) for f, level, w in raw)


def encode_event(event: LinkageEvent) -> str:
    """Stable JSON: sorted keys, no spaces, timestamps in UTC ISO 8601 with milliseconds."""
    body: dict[str, object] = {"v": EVENT_VERSION, "kind": event_kind(event)}
    for spec in dataclasses.fields(event):
        name = spec.name
        value = getattr(event, name)
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC).isoformat(timespec="milliseconds")
        elif isinstance(value, NormalisedIdentity):
            value = value.as_dict()
        elif name == "evidence":
            value = _evidence_out(value)
        elif isinstance(value, tuple):
            value = list(value)
        body[name] = value
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def decode_event(text: str | bytes) -> LinkageEvent:
    """Decode one event; EventDecodeError names what is wrong (never a value)."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise EventDecodeError(f"linkage event is not JSON: {exc.__class__.__name__}") from exc
    if not isinstance(body, dict):
        raise EventDecodeError("linkage event must be a JSON object")
    if body.pop("v", None) != EVENT_VERSION:
        raise EventDecodeError(f"linkage event version must be {EVENT_VERSION}")
    cls = _BY_KIND.get(str(body.pop("kind", "")))
    if cls is None:
        raise EventDecodeError("linkage event has an unknown kind")
    fields = {spec.name for spec in dataclasses.fields(cls)}
    if set(body) != fields:
        raise EventDecodeError(f"{_KINDS[cls]} event fields differ from "
                               f"{', '.join(sorted(fields))}")
    try:
        body["at"] = dt.datetime.fromisoformat(body["at"])
        if "identity" in body:
            body["identity"] = NormalisedIdentity.from_dict(body["identity"])
        if "evidence" in body:
            body["evidence"] = _evidence_in(body["evidence"])
        if "record_keys" in body:
            body["record_keys"] = tuple(body["record_keys"])
        event: LinkageEvent = cls(**body)
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, EventDecodeError):
            raise
        raise EventDecodeError(f"{_KINDS[cls]} event is malformed: "
                               f"{exc.__class__.__name__}") from exc
    return event
