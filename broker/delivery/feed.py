"""Reading a subscription's delivery topic from a cursor: the shared core of pull,
server-sent events and (later) webhooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broker.delivery.cursor import Cursor
from broker.delivery.envelope import DeliveryEnvelope
from broker.delivery.view_text import ViewText, view_text
from broker.frozen_init import quick_init
from broker.log.port import AppendWatching, EventLog, LogRecord
from broker.topics import delivery_topic
from schemas.compiled_json_reader import TextReader, compiled_json_reader
from schemas.compiled_reader import NOT_CANONICAL
from schemas.decoded_json import DecodedToJson
from schemas.errors import DecodeError
from schemas.registry import SchemaRegistry
from schemas.wire import HEADER_SIZE, WireCodec, body_reader, read_header

_NOT_CANONICAL = (*NOT_CANONICAL, DecodeError)
"""What the compiled JSON-text reader raises for a body it leaves to the decode path (a
date or time out of range raises `DecodeError`)."""


@quick_init
@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivered event: envelope, the view record, and the cursor just past it."""

    envelope: DeliveryEnvelope
    schema_id: int
    data_json: str
    """The view record as compact JSON text, as `json.dumps(data, separators=(",", ":"))`
    writes it (`schemas.compiled_json_reader`, `broker.delivery.view_text`)."""
    wire: bytes
    cursor: str
    decoded: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The view's JSON values where the feed made them on its way to the text; None
    where it read the Avro body straight to text."""

    @property
    def data(self) -> dict[str, Any]:
        """The view record as JSON values (a new dict each time where the feed wrote its
        text without one: streams and pulls send the text, webhooks and sinks read
        this)."""
        if self.decoded is not None:
            return self.decoded
        data: dict[str, Any] = json.loads(self.data_json)
        return data

    def to_json(self) -> dict[str, Any]:
        e = self.envelope
        return {
            "event_id": e.event_id,
            "decision_id": e.decision_id,
            "event_type": e.event_type,
            "source": e.source,
            "occurred_at": iso_ms(e.occurred_at_ms),
            "ingested_at": iso_ms(e.ingested_at_ms),
            "schema_id": self.schema_id,
            "data": self.data,
            "withheld": list(e.withheld),
            "obligations": list(e.obligations),
            "cursor": self.cursor,
        }

    def to_sse(self) -> str:
        body = json.dumps(self.to_json(), separators=(",", ":"))
        return f"id: {self.cursor}\nevent: {self.envelope.event_type}\ndata: {body}\n\n"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


_EXACT_MS = 4_000_000_000_000
"""Within this many milliseconds of the epoch (years 1843 to 2096), `ms / 1000` as a
float is within half a microsecond of the true instant, so `_iso` shows the exact
millisecond and its text is the second's text plus the milliseconds."""
_SECONDS_KEPT = 4096
_seconds: dict[int, str] = {}


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC text with milliseconds and `Z`.

    Delivery formats two per record, and records of a moment share their second: the
    text of each second is made once (as `_iso` makes it), then reused."""
    if not -_EXACT_MS < ms < _EXACT_MS:
        return _iso(ms)
    second, milli = divmod(ms, 1000)
    prefix = _seconds.get(second)
    if prefix is None:
        prefix = _iso(second * 1000)[:-5]
        if len(_seconds) >= _SECONDS_KEPT:
            _seconds.clear()
        _seconds[second] = prefix
    return f"{prefix}.{milli:03d}Z"


class DeliveryFeed:
    def __init__(self, event_log: EventLog, codec: WireCodec, registry: SchemaRegistry) -> None:
        self._log = event_log
        self._codec = codec
        self._registry = registry
        self._schemas: dict[int, Any] = {}
        self._to_json: dict[int, tuple[DecodedToJson, Callable[[bytes], Any], ViewText,
                                       TextReader | None]] = {}

    def partitions(self, subscription_id: str) -> int:
        return self._log.partitions(delivery_topic(subscription_id))

    def end_offsets(self, subscription_id: str) -> list[int]:
        """Per partition, the offset the next delivery will get."""
        topic = delivery_topic(subscription_id)
        return [self._log.end_offset(topic, p) for p in range(self._log.partitions(topic))]

    def schema(self, schema_id: int) -> dict[str, Any]:
        """The view schema (JSON form) registered under `schema_id`."""
        schema = self._schemas.get(schema_id)
        if schema is None:
            schema = json.loads(self._registry.by_id(schema_id).schema)
            self._schemas[schema_id] = schema
        return schema

    def read(self, subscription_id: str, cursor: Cursor, limit: int
             ) -> tuple[list[Delivery], Cursor]:
        steps = self.read_steps(subscription_id, cursor, limit)
        return [d for _, d in steps], (steps[-1][0] if steps else cursor)

    def read_steps(self, subscription_id: str, cursor: Cursor, limit: int,
                   until: Cursor | None = None) -> list[tuple[Cursor, Delivery]]:
        """Up to `limit` deliveries after `cursor`, each with the cursor just past it;
        with `until`, only records before it in each partition (reading to `until`
        leaves the cursor equal to it)."""
        topic = delivery_topic(subscription_id)
        merged: list[LogRecord] = []
        for partition, offset in enumerate(cursor.offsets):
            most = limit if until is None else min(limit, until.offsets[partition] - offset)
            if most > 0:
                records = self._log.read(topic, partition, offset, most)
                if until is not None:
                    records = [r for r in records if r.offset < until.offsets[partition]]
                merged.extend(records)
        out: list[tuple[Cursor, Delivery]] = []
        if len(cursor.offsets) == 1:
            # One partition (the default): its records are in offset order, and the
            # cursor after each is its next offset.
            first = cursor.offsets[0]
            for record in merged[:limit]:
                after = max(record.offset + 1, first)
                out.append((Cursor((after,)), self._delivery(record, str(after))))
            return out
        # Across partitions, hand out records in append-time order; within a partition
        # offsets already are.
        merged.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
        # The cursor after each record, as `Cursor.advanced` and `str` make it.
        offsets = list(cursor.offsets)
        for record in merged[:limit]:
            if record.offset >= offsets[record.partition]:
                offsets[record.partition] = record.offset + 1
            out.append((Cursor(tuple(offsets)),
                        self._delivery(record, ".".join(map(str, offsets)))))
        return out

    def wait(self, subscription_id: str, cursor: Cursor, timeout: float) -> bool:
        topic = delivery_topic(subscription_id)
        positions = {(topic, p): o for p, o in enumerate(cursor.offsets)}
        return self._log.wait(positions, timeout)

    def watch(self, subscription_id: str, wake: Callable[[], None]
              ) -> Callable[[], None] | None:
        """Have `wake()` called (from another thread) after deliveries are appended to
        `subscription_id`'s topic; the function returned stops it. None when the log
        cannot tell (Kafka): then `wait` in a thread."""
        if not isinstance(self._log, AppendWatching):
            return None
        return self._log.watch_appends(delivery_topic(subscription_id), wake)

    def decode(self, record: LogRecord, cursor: str = "") -> Delivery:
        """A delivery record (from `deliver.<subscription>` or its dead-letter queue) as
        a `Delivery`."""
        return self._delivery(record, cursor)

    def _delivery(self, record: LogRecord, cursor: str) -> Delivery:
        value = record.value
        schema_id = read_header(value, self._codec.max_bytes)
        known = self._to_json.get(schema_id)
        if known is None:
            # The codec vets a schema id (known, safe to decode) as it decodes; the
            # decoding schema below has the same shape.
            self._codec.decode(value)
            to_json = DecodedToJson(self.schema(schema_id))
            known = self._to_json[schema_id] = (
                to_json, body_reader(to_json.decoding_schema),
                view_text(self.schema(schema_id)),
                compiled_json_reader(to_json.decoding_schema, HEADER_SIZE))
        to_json, read, text, read_text = known
        if read_text is not None:
            # The Avro body straight to its JSON text, in one pass; a body not in
            # canonical form takes the way below, which reads it or says why not.
            try:
                data_json = read_text(value)
            except _NOT_CANONICAL:
                pass
            else:
                return Delivery(DeliveryEnvelope.from_record(record), schema_id, data_json,
                                value, cursor)
        # The view is decoded here and is ours: its values become JSON values in place.
        view = to_json(read(value))
        return Delivery(DeliveryEnvelope.from_record(record), schema_id, text(view), value,
                        cursor, view)
