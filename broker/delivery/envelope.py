"""How a delivery is carried on `deliver.<subscription>`: Avro view in Confluent wire
format as the value, and the envelope (ids, provenance, what was withheld) as headers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from broker.frozen_init import quick_init
from broker.log.port import Headers, LogRecord

H_EVENT_ID = "handoff.event_id"
H_DECISION_ID = "handoff.decision_id"
H_EVENT_TYPE = "handoff.event_type"
H_SOURCE = "handoff.source"
H_OCCURRED_AT = "handoff.occurred_at"
H_INGESTED_AT = "handoff.ingested_at"
H_WITHHELD = "handoff.withheld"
H_OBLIGATIONS = "handoff.obligations"
_ROUTER_ORDER = (H_EVENT_ID, H_DECISION_ID, H_EVENT_TYPE, H_SOURCE, H_OCCURRED_AT,
                 H_INGESTED_AT, H_WITHHELD, H_OBLIGATIONS)


@quick_init
@dataclass(frozen=True, slots=True)
class DeliveryEnvelope:
    event_id: str
    decision_id: str
    event_type: str
    source: str
    occurred_at_ms: int
    ingested_at_ms: int
    withheld: tuple[str, ...]
    obligations: tuple[dict[str, Any], ...]

    def headers(self) -> Headers:
        return delivery_headers(
            self.event_id, self.decision_id, self.event_type, self.source,
            self.occurred_at_ms, self.ingested_at_ms,
            json.dumps(list(self.withheld)).encode(),
            json.dumps(list(self.obligations)).encode(),
        )

    @classmethod
    def from_record(cls, record: LogRecord) -> DeliveryEnvelope:
        headers = record.headers
        if len(headers) == 8:
            # The router writes the eight headers in this order (`delivery_headers`):
            # read by position when the names say so.
            ((n0, event_id), (n1, decision_id), (n2, event_type), (n3, source),
             (n4, occurred), (n5, ingested), (n6, withheld), (n7, obligations)) = headers
            if (n0, n1, n2, n3, n4, n5, n6, n7) == _ROUTER_ORDER:
                return cls(event_id.decode(), decision_id.decode(), event_type.decode(),
                           source.decode(), int(occurred), int(ingested),
                           _json_list(withheld), _json_list(obligations))
        h = dict(headers)
        return cls(
            event_id=h[H_EVENT_ID].decode(),
            decision_id=h[H_DECISION_ID].decode(),
            event_type=h[H_EVENT_TYPE].decode(),
            source=h[H_SOURCE].decode(),
            occurred_at_ms=int(h[H_OCCURRED_AT]),
            ingested_at_ms=int(h[H_INGESTED_AT]),
            withheld=_json_list(h[H_WITHHELD]),
            obligations=_json_list(h[H_OBLIGATIONS]),
        )


_LISTS_KEPT = 256
_lists: dict[bytes, tuple[Any, ...]] = {}


def _json_list(raw: bytes) -> tuple[Any, ...]:
    """A withheld or obligations header as a tuple. The router encodes these once per
    compiled policy outcome, so few distinct values recur across millions of records:
    each is parsed once, and the same tuple is handed out for equal headers (callers
    read obligations, never change them)."""
    parsed = _lists.get(raw)
    if parsed is None:
        parsed = tuple(json.loads(raw))
        if len(_lists) >= _LISTS_KEPT:
            _lists.clear()
        _lists[raw] = parsed
    return parsed


def delivery_headers(
    event_id: str, decision_id: str, event_type: str, source: str, occurred_at_ms: int,
    ingested_at_ms: int, withheld_json: bytes, obligations_json: bytes,
) -> Headers:
    """Headers of one delivery. The withheld and obligations lists arrive encoded, since
    the router encodes them once per compiled policy outcome, not once per event."""
    return EnvelopeConstants.of(event_type, source, withheld_json, obligations_json
                                ).headers(event_id, decision_id, occurred_at_ms,
                                          ingested_at_ms)


@dataclass(frozen=True, slots=True)
class EnvelopeConstants:
    """The headers every delivery of one compiled policy outcome shares (event type,
    source, withheld and obligations lists), encoded once: a delivery adds its ids and
    times."""

    event_type: tuple[str, bytes]
    source: tuple[str, bytes]
    withheld: tuple[str, bytes]
    obligations: tuple[str, bytes]

    @classmethod
    def of(cls, event_type: str, source: str, withheld_json: bytes,
           obligations_json: bytes) -> EnvelopeConstants:
        return cls((H_EVENT_TYPE, event_type.encode()), (H_SOURCE, source.encode()),
                   (H_WITHHELD, withheld_json), (H_OBLIGATIONS, obligations_json))

    def headers(self, event_id: str, decision_id: str, occurred_at_ms: int,
                ingested_at_ms: int) -> Headers:
        return (
            (H_EVENT_ID, event_id.encode()),
            (H_DECISION_ID, decision_id.encode()),
            self.event_type,
            self.source,
            (H_OCCURRED_AT, str(occurred_at_ms).encode()),
            (H_INGESTED_AT, str(ingested_at_ms).encode()),
            self.withheld,
            self.obligations,
        )
