"""A delivery rendered once for every reader of it: the SSE text of a stream and the
JSON body of a pull, between the cursors before and after it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from broker.delivery.cursor import Cursor
from broker.delivery.feed import Delivery


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
    body = json.dumps(delivery.to_json(), separators=(",", ":"))
    return Frame(before, after, delivery, body,
                 f"id: {delivery.cursor}\nevent: {delivery.envelope.event_type}\n"
                 f"data: {body}\n\n")


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
