"""Where each connector stands, and what it gave up on, kept in the event log itself.

Positions live in the compacted topic `_connect.offsets`, one record per commit, keyed by
connector name, so they are as durable as the events they describe and work the same on
the embedded and the Kafka backend (Kafka Connect keeps its source offsets the same way).
Dead letters go to `_connect.dead_letters`, keyed by connector name: the reason (field
paths and problems) and where the record is in its source, never its values.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence

from broker.log.port import EventLog, NewRecord, TopicSpec
from connectors.dead_letters import DeadLetter
from connectors.ports import Position

OFFSETS_TOPIC = "_connect.offsets"
DEAD_LETTERS_TOPIC = "_connect.dead_letters"

_COMPACT_EVERY = 1000


class TopicOffsetStore:
    """Committed positions of every connector of one broker (the SDK's `OffsetStore`).

    Reads the topic once when opened and then keeps the latest position per connector in
    memory; `commit` appends first and updates memory only once the append is durable.
    """

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        self._lock = threading.Lock()
        self._positions: dict[str, Position] = {}
        self._since_compaction = 0
        event_log.ensure_topic(TopicSpec(OFFSETS_TOPIC, partitions=1, compacted=True))
        self._compact()
        self._load()

    def _load(self) -> None:
        offset, end = 0, self._log.end_offset(OFFSETS_TOPIC, 0)
        while offset < end:
            records = self._log.read(OFFSETS_TOPIC, 0, offset, 500)
            if not records:
                break
            for record in records:
                if record.key is None:
                    continue
                doc = json.loads(record.value)
                self._positions[record.key.decode()] = doc["position"]
            offset = records[-1].offset + 1

    def get(self, connector: str) -> Position | None:
        """The last committed position of `connector`, or None if it never committed."""
        with self._lock:
            position = self._positions.get(connector)
        return None if position is None else json.loads(json.dumps(position))

    def commit(self, connector: str, position: Position) -> None:
        """Persist `position` durably; returns once the event log has it."""
        value = json.dumps({"position": position, "at_ms": int(time.time() * 1000)},
                           separators=(",", ":"), sort_keys=True).encode()
        self._log.append(OFFSETS_TOPIC, [NewRecord(value=value, key=connector.encode())])
        with self._lock:
            self._positions[connector] = json.loads(value)["position"]
            self._since_compaction += 1
            due = self._since_compaction >= _COMPACT_EVERY
            if due:
                self._since_compaction = 0
        if due:
            self._compact()

    def _compact(self) -> None:
        # Kafka compacts on its own; the embedded log does it when asked.
        compact = getattr(self._log, "compact", None)
        if callable(compact):
            compact(OFFSETS_TOPIC)


class DeadLetterTopic:
    """Appends and reads connectors' dead letters (the SDK's `DeadLetterLog`)."""

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        event_log.ensure_topic(TopicSpec(DEAD_LETTERS_TOPIC, partitions=1))

    def append(self, letters: Sequence[DeadLetter]) -> None:
        """Write dead letters durably, in one append."""
        if not letters:
            return
        now = int(time.time() * 1000)
        self._log.append(DEAD_LETTERS_TOPIC, [
            NewRecord(value=json.dumps({**d.to_json(), "at_ms": d.at_ms or now},
                                       separators=(",", ":")).encode(),
                      key=d.connector.encode())
            for d in letters
        ])

    def read(self, connector: str | None = None, after: int = 0) -> Iterator[DeadLetter]:
        """Dead letters from offset `after` on, optionally of one connector only."""
        offset, end = after, self._log.end_offset(DEAD_LETTERS_TOPIC, 0)
        while offset < end:
            records = self._log.read(DEAD_LETTERS_TOPIC, 0, offset, 500)
            if not records:
                return
            for record in records:
                if connector is None or record.key == connector.encode():
                    yield DeadLetter.from_json(json.loads(record.value), record.offset)
            offset = records[-1].offset + 1

    def end(self) -> int:
        return self._log.end_offset(DEAD_LETTERS_TOPIC, 0)
