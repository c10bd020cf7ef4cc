"""The HTTP calls of the API as values, and what their answers mean: shared by the sync
and the async client, which differ only in how they send."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from handoff.client.results import (
    AuditRecord,
    DecisionPage,
    Delivery,
    Disclosures,
    Explanation,
    Json,
    Page,
    Placed,
    frozen,
)

AVRO = "application/vnd.handoff.avro"
Params = Mapping[str, str | int | float]


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    params: Params = field(default_factory=dict)
    json: Json = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def with_event_id(event: Mapping[str, Json]) -> dict[str, Json]:
    """The event with an `event_id`, given one here if it has none, so every retry of
    it is the same event to the broker."""
    return {**event, "event_id": event.get("event_id") or str(uuid.uuid4())}


def publish(event_type: str, event: Mapping[str, Json]) -> Call:
    return Call("POST", f"/v1/events/{event_type}", json=dict(event))


def publish_avro(event_type: str, payload: bytes) -> Call:
    return Call("POST", f"/v1/events/{event_type}", content=payload,
                headers={"Content-Type": AVRO})


def publish_batch(event_type: str, events: Sequence[Mapping[str, Json]]) -> Call:
    return Call("POST", f"/v1/events/{event_type}:batch",
                json={"events": [dict(e) for e in events]})


def latest_schema(event_type: str) -> Call:
    return Call("GET", f"/v1/registry/subjects/events.{event_type}-value/versions/latest")


def pull(subscription: str, after: str | None, limit: int, wait: float) -> Call:
    params: dict[str, str | int | float] = {"limit": limit, "wait": wait}
    if after:
        params["after"] = after
    return Call("GET", f"/v1/subscriptions/{subscription}/events", params=params)


def stream(subscription: str, last_event_id: str | None) -> Call:
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return Call("GET", f"/v1/subscriptions/{subscription}/stream", headers=headers)


def explain(event_type: str, source: str, subscription: str, event: Mapping[str, Json],
            consents: Iterable[Mapping[str, Json]], at_ms: int | None,
            consents_recorded_by: str | None) -> Call:
    body: dict[str, Json] = {"event_type": event_type, "source": source,
                             "subscription": subscription, "event": dict(event),
                             "consents": [dict(c) for c in consents]}
    if at_ms is not None:
        body["at"] = at_ms
    if consents_recorded_by is not None:
        body["consents_recorded_by"] = consents_recorded_by
    return Call("POST", "/v1/explain", json=body)


def decisions(filters: Mapping[str, str | int | None], after: int, limit: int) -> Call:
    params: dict[str, str | int | float] = {k: v for k, v in filters.items() if v is not None}
    params.update({"after": after, "limit": limit})
    return Call("GET", "/v1/audit/decisions", params=params)


def disclosures(subject_id: str, since: str | None, until: str | None) -> Call:
    params = {k: v for k, v in (("since", since), ("until", until)) if v is not None}
    return Call("GET", f"/v1/audit/disclosures/{subject_id}", params=params)


# -- answers ---------------------------------------------------------------------------


def _object(body: Json) -> Mapping[str, Json]:
    if not isinstance(body, Mapping):
        raise ValueError("the broker's answer is not a JSON object")
    return body


def placed(body: Json) -> Placed:
    return Placed.from_json(_object(body))


def _items(value: Json) -> list[Json]:
    return value if isinstance(value, list) else []


def placed_batch(body: Json) -> tuple[Placed, ...]:
    return tuple(Placed.from_json(_object(p)) for p in _items(_object(body).get("accepted")))


def page(body: Json) -> Page:
    doc = _object(body)
    return Page(tuple(Delivery.from_json(_object(e)) for e in _items(doc.get("events"))),
                str(doc.get("next", "")))


def explanation(body: Json) -> Explanation:
    return Explanation.from_json(_object(body))


def decision_page(body: Json) -> DecisionPage:
    doc = _object(body)
    return DecisionPage(tuple(AuditRecord.from_json(_object(r))
                              for r in _items(doc.get("records"))),
                        int(str(doc.get("next", 0))))


def disclosure_list(body: Json) -> Disclosures:
    doc = _object(body)
    return Disclosures(str(doc.get("subject", "")),
                       tuple(frozen(d) for d in _items(doc.get("disclosures"))))
