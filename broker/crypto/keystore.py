"""Where wrapped data keys are kept: the `KeyStore` port and its event-log adapter.

A data key encrypts the records of one topic appended during one period. Only its
wrapped form is stored, with what it is for; shredding replaces that entry with a
tombstone saying when the key was destroyed, so a reader can tell "shredded" from
"never existed".
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from broker.crypto.errors import CryptoError
from broker.log.port import EventLog, NewRecord, TopicSpec

KEYS_TOPIC = "_keys"
"""Wrapped data keys (compacted; the record key is the data key's id)."""


@dataclass(frozen=True, slots=True)
class DataKeyEntry:
    """One data key as stored: wrapped, or a tombstone once shredded."""

    key_id: str
    topic: str
    period_start_ms: int
    period_end_ms: int
    created_ms: int
    kek_id: str | None = None
    wrapped: bytes | None = None
    shredded_ms: int | None = None

    @property
    def shredded(self) -> bool:
        return self.shredded_ms is not None

    def wrap_context(self) -> bytes:
        """What the KEK binds to the wrapped key: a wrapped key moved onto another entry
        (another topic or period) does not unwrap."""
        return (f"handoff/data-key/v1\0{self.key_id}\0{self.topic}\0"
                f"{self.period_start_ms}\0{self.period_end_ms}").encode()

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "v": 1, "key_id": self.key_id, "topic": self.topic,
            "period_start_ms": self.period_start_ms, "period_end_ms": self.period_end_ms,
            "created_ms": self.created_ms,
        }
        if self.shredded_ms is not None:
            doc["shredded_ms"] = self.shredded_ms
        else:
            doc["kek_id"] = self.kek_id
            doc["wrapped"] = base64.b64encode(self.wrapped or b"").decode()
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> DataKeyEntry:
        try:
            doc = json.loads(raw)
            wrapped = doc.get("wrapped")
            return cls(
                key_id=str(doc["key_id"]), topic=str(doc["topic"]),
                period_start_ms=int(doc["period_start_ms"]),
                period_end_ms=int(doc["period_end_ms"]), created_ms=int(doc["created_ms"]),
                kek_id=doc.get("kek_id"),
                wrapped=base64.b64decode(wrapped) if wrapped is not None else None,
                shredded_ms=doc.get("shredded_ms"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CryptoError(f"a stored data-key entry is malformed ({type(exc).__name__})"
                              ) from exc

    def tombstone(self, at_ms: int) -> DataKeyEntry:
        return DataKeyEntry(self.key_id, self.topic, self.period_start_ms,
                            self.period_end_ms, self.created_ms, shredded_ms=at_ms)


class KeyStore(Protocol):
    """Durable storage of data-key entries, shared by every process of a broker."""

    def put(self, entries: Iterable[DataKeyEntry]) -> None:
        """Store entries durably; a later entry for the same key id replaces the earlier."""
        ...

    def changes(self) -> list[DataKeyEntry]:
        """Entries stored since the previous call (all of them on the first call), by
        this process or another, in the order they were stored."""
        ...

    def purge_replaced(self) -> int:
        """Physically remove replaced entries (old wrappings, shredded keys) where the
        storage allows it now; returns how many were removed."""
        ...


@runtime_checkable
class _CompactingLog(Protocol):
    def compact(self, topic: str) -> int: ...


class LogKeyStore:
    """A `KeyStore` on the event log's compacted `_keys` topic, so every process of a
    broker, on either backend, sees the same keys.

    On the embedded log `purge_replaced` compacts the topic at once; Kafka's log cleaner
    compacts it in the background (see docs/security.md for what that means for
    shredding on Kafka).
    """

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        self._position = 0
        self._lock = threading.Lock()
        event_log.ensure_topic(TopicSpec(KEYS_TOPIC, partitions=1, compacted=True))

    def put(self, entries: Iterable[DataKeyEntry]) -> None:
        records = [NewRecord(value=e.to_json(), key=e.key_id.encode()) for e in entries]
        if records:
            self._log.append(KEYS_TOPIC, records)

    def changes(self) -> list[DataKeyEntry]:
        with self._lock:
            out: list[DataKeyEntry] = []
            while True:
                records = self._log.read(KEYS_TOPIC, 0, self._position, 1000)
                if not records:
                    return out
                out.extend(DataKeyEntry.from_json(r.value) for r in records)
                self._position = records[-1].offset + 1

    def purge_replaced(self) -> int:
        if isinstance(self._log, _CompactingLog):
            return self._log.compact(KEYS_TOPIC)
        return 0
