"""A delivery rendered once for every reader of it: the SSE text of a stream and the
JSON body of a pull, between the cursors before and after it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii

from broker.delivery.cursor import Cursor
from broker.delivery.feed import Delivery, iso_ms
from broker.delivery.view_text import compact as _compact
from broker.frozen_init import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class Frame:
    before: Cursor
    after: Cursor
    delivery: Delivery
    body: str
    """The delivery as compact JSON (what `Delivery.to_json` gives)."""
    sse: str
    """The server-sent event: `id:` the cursor after it, `event:` its type, `data:` body."""


def frame(before: Cursor, after: Cursor, delivery: Delivery) -> Frame:
    body = _body(delivery)
    return Frame(before, after, delivery, body,
                 f"id: {delivery.cursor}\nevent: {delivery.envelope.event_type}\n"
                 f"data: {body}\n\n")


_text = encode_basestring_ascii
"""A string as `json.dumps` writes it (quoted, escaped, ASCII only)."""


def _body(delivery: Delivery) -> str:
    """`json.dumps(delivery.to_json(), separators=(",", ":"))`, to the byte, built from
    its parts: the view's text comes with the delivery (`Delivery.data_json`), the
    envelope's strings are escaped one by one, and its lists, shared by every record of
    a policy outcome, are encoded once (`_list_text`)."""
    e = delivery.envelope
    return "".join((
        '{"event_id":', _text(e.event_id),
        ',"decision_id":', _text(e.decision_id),
        ',"event_type":', _text(e.event_type),
        ',"source":', _text(e.source),
        ',"occurred_at":"', iso_ms(e.occurred_at_ms),
        '","ingested_at":"', iso_ms(e.ingested_at_ms),
        '","schema_id":', int.__repr__(delivery.schema_id),
        ',"data":', delivery.data_json,
        ',"withheld":', _list_text(e.withheld),
        ',"obligations":', _list_text(e.obligations),
        ',"cursor":', _text(delivery.cursor), "}",
    ))


_LISTS_KEPT = 256
_list_texts: dict[int, tuple[tuple[object, ...], str]] = {}


def _list_text(values: tuple[object, ...]) -> str:
    """A withheld or obligations tuple as compact JSON. Envelopes read from equal
    headers share one tuple (`DeliveryEnvelope.from_record`), so the text is looked up
    by the tuple's identity (held in the entry, so its id is not reused)."""
    hit = _list_texts.get(id(values))
    if hit is not None and hit[0] is values:
        return hit[1]
    text = _compact(list(values))
    if len(_list_texts) >= _LISTS_KEPT:
        _list_texts.clear()
    _list_texts[id(values)] = (values, text)
    return text


def render(cursor: Cursor, steps: Sequence[tuple[Cursor, Delivery]]) -> tuple[Frame, ...]:
    """Frames of deliveries read after `cursor`, each given with the cursor past it."""
    out: list[Frame] = []
    before = cursor
    for after, delivery in steps:
        out.append(frame(before, after, delivery))
        before = after
    return tuple(out)


def json_page(frames: Sequence[Frame], next_cursor: Cursor) -> bytes:
    """A pull's JSON answer, `{"events": [...], "next": cursor}`, from rendered frames."""
    events = ",".join(f.body for f in frames)
    return f'{{"events":[{events}],"next":"{next_cursor}"}}'.encode()
