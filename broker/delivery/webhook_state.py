"""What webhook delivery remembers across restarts, kept in the event log itself.

Everything lives in one compacted topic, `_webhook.state`, keyed by what it describes, so
it survives restarts on both backends and is shared by the process that dispatches and
the one that serves the API:

- `cursor/<subscription>`: the next offset to send in each partition of
  `deliver.<subscription>`, plus the failed attempts so far of the event at that position
  and when the next attempt is due (a restart continues the retry schedule instead of
  starting it again);
- `endpoint/<subscription>`: whether the endpoint is `healthy`, `failing` (an event was
  dead-lettered since the last success) or `disabled` (it answered 410 Gone, or an
  operator disabled it), with the URL that state applies to;
- `replayed/<subscription>/<dead letter id>`: that a dead letter was put back for
  delivery, when and by whom.

Readers catch up incrementally (like the consent feed), so a state change written by one
process is seen by another within one catch-up.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from broker.log.port import EventLog, NewRecord, TopicSpec

STATE_TOPIC = "_webhook.state"
EndpointStatus = Literal["healthy", "failing", "disabled"]


@dataclass(frozen=True, slots=True)
class CursorState:
    """Where a subscription's dispatcher stands."""

    offsets: tuple[int, ...]
    attempts: int = 0
    """Failed attempts of the event at `offsets` (the head)."""
    next_attempt_ms: int = 0
    """When the head may be tried again (epoch ms); 0: now."""

    def to_json(self) -> dict[str, Any]:
        return {"offsets": list(self.offsets), "attempts": self.attempts,
                "next_attempt_ms": self.next_attempt_ms}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CursorState:
        return cls(tuple(int(o) for o in doc["offsets"]), int(doc.get("attempts", 0)),
                   int(doc.get("next_attempt_ms", 0)))


@dataclass(frozen=True, slots=True)
class EndpointState:
    """How a subscription's webhook endpoint is doing."""

    status: EndpointStatus = "healthy"
    url: str | None = None
    since_ms: int = 0
    reason: str | None = None
    """Why it is failing or disabled ("HTTP 503", "timeout", "HTTP 410", "operator")."""


@dataclass(frozen=True, slots=True)
class ReplayMark:
    at_ms: int
    actor: str | None


@dataclass
class _Snapshot:
    cursors: dict[str, CursorState] = field(default_factory=dict)
    endpoints: dict[str, EndpointState] = field(default_factory=dict)
    replayed: dict[str, dict[int, ReplayMark]] = field(default_factory=dict)


class WebhookStateStore:
    """Reads and writes `_webhook.state`. Thread-safe; one instance per process."""

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        self._lock = threading.Lock()
        self._position = 0
        self._state = _Snapshot()
        event_log.ensure_topic(TopicSpec(STATE_TOPIC, partitions=1, compacted=True))

    def catch_up(self) -> None:
        """Apply records appended (by any process) since the last call."""
        with self._lock:
            end = self._log.end_offset(STATE_TOPIC, 0)
            while self._position < end:
                records = self._log.read(STATE_TOPIC, 0, self._position, 1000)
                if not records:
                    break
                for record in records:
                    if record.key is not None:
                        self._apply(record.key.decode(), json.loads(record.value))
                self._position = records[-1].offset + 1

    def _apply(self, key: str, doc: dict[str, Any]) -> None:
        kind, _, rest = key.partition("/")
        if kind == "cursor":
            self._state.cursors[rest] = CursorState.from_json(doc)
        elif kind == "endpoint":
            self._state.endpoints[rest] = EndpointState(**doc)
        elif kind == "replayed":
            sub_id, _, dead_letter_id = rest.rpartition("/")
            self._state.replayed.setdefault(sub_id, {})[int(dead_letter_id)] = \
                ReplayMark(**doc)

    # -- reads (after catch_up) -----------------------------------------------------------

    def cursor(self, sub_id: str, partitions: int) -> CursorState:
        with self._lock:
            found = self._state.cursors.get(sub_id)
        if found is None or len(found.offsets) != partitions:
            # Never sent anything, or the topic was re-created with another partition
            # count: start at the beginning (receivers de-duplicate by webhook-id).
            return CursorState((0,) * partitions)
        return found

    def endpoint(self, sub_id: str) -> EndpointState:
        with self._lock:
            return self._state.endpoints.get(sub_id, EndpointState())

    def replayed(self, sub_id: str) -> dict[int, ReplayMark]:
        with self._lock:
            return dict(self._state.replayed.get(sub_id, {}))

    # -- writes -------------------------------------------------------------------------

    def put_cursor(self, sub_id: str, cursor: CursorState) -> None:
        self._put(f"cursor/{sub_id}", cursor.to_json())

    def put_endpoint(self, sub_id: str, endpoint: EndpointState) -> None:
        self._put(f"endpoint/{sub_id}", asdict(endpoint))

    def mark_replayed(self, sub_id: str, dead_letter_ids: list[int], at_ms: int,
                      actor: str | None) -> None:
        records = [NewRecord(key=f"replayed/{sub_id}/{i}".encode(),
                             value=json.dumps({"at_ms": at_ms, "actor": actor}).encode())
                   for i in dead_letter_ids]
        if records:
            self._log.append(STATE_TOPIC, records)
            self.catch_up()

    def _put(self, key: str, doc: dict[str, Any]) -> None:
        self._log.append(STATE_TOPIC, [NewRecord(key=key.encode(),
                                                 value=json.dumps(doc).encode())])
        self.catch_up()
