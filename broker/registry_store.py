"""Keeps the schema registry in the event log's `_schemas` topic, as Confluent Schema
Registry keeps it in Kafka, so one store serves both backends."""

from __future__ import annotations

import json
import threading

from broker.log.port import EventLog, NewRecord, TopicSpec
from broker.topics import SCHEMAS
from schemas.compatibility import CompatibilityLevel
from schemas.store import RegistrySnapshot, StoredSchema


class LogRegistryStore:
    """A `RegistryStore` on a compacted topic: one record per schema version (key
    `schema/<subject>/<version>`; a soft delete saves it again, flagged) or
    compatibility setting (key `config/<subject>`).

    `load` reads only what was appended since the last load, so a process can ask for
    other processes' registrations often (the router does, to pick up new event types)
    at the cost of one empty read.
    """

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        self._lock = threading.Lock()
        self._schemas: dict[tuple[str, int], StoredSchema] = {}
        self._levels: dict[str | None, CompatibilityLevel] = {}
        self._offset = 0
        event_log.ensure_topic(TopicSpec(SCHEMAS, partitions=1, compacted=True))

    def load(self) -> RegistrySnapshot:
        with self._lock:
            while True:
                records = self._log.read(SCHEMAS, 0, self._offset, 1000)
                if not records:
                    break
                for record in records:
                    self._apply(json.loads(record.value))
                self._offset = records[-1].offset + 1
            return RegistrySnapshot(tuple(self._schemas.values()), dict(self._levels))

    def _apply(self, doc: dict[str, object]) -> None:
        if doc["kind"] == "schema":
            s = StoredSchema(str(doc["subject"]), int(str(doc["version"])),
                             int(str(doc["id"])), str(doc["schema"]),
                             bool(doc.get("deleted", False)))
            self._schemas[(s.subject, s.version)] = s
        else:
            subject = doc["subject"]
            self._levels[None if subject is None else str(subject)] = CompatibilityLevel(
                str(doc["level"]))

    def save_schema(self, schema: StoredSchema) -> None:
        doc: dict[str, object] = {"kind": "schema", "subject": schema.subject,
                                  "version": schema.version, "id": schema.schema_id,
                                  "schema": schema.schema}
        if schema.deleted:
            doc["deleted"] = True
        with self._lock:
            self._log.append(SCHEMAS, [NewRecord(
                value=json.dumps(doc).encode(),
                key=f"schema/{schema.subject}/{schema.version}".encode())])

    def save_compatibility(self, subject: str | None, level: CompatibilityLevel) -> None:
        doc = {"kind": "config", "subject": subject, "level": str(level.value)}
        with self._lock:
            self._log.append(SCHEMAS, [NewRecord(
                value=json.dumps(doc).encode(), key=f"config/{subject or ''}".encode())])
