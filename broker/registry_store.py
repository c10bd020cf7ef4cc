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
    `schema/<subject>/<version>`) or compatibility setting (key `config/<subject>`)."""

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        self._lock = threading.Lock()
        event_log.ensure_topic(TopicSpec(SCHEMAS, partitions=1, compacted=True))

    def load(self) -> RegistrySnapshot:
        schemas: dict[tuple[str, int], StoredSchema] = {}
        levels: dict[str | None, CompatibilityLevel] = {}
        offset = 0
        while True:
            records = self._log.read(SCHEMAS, 0, offset, 1000)
            if not records:
                break
            for record in records:
                doc = json.loads(record.value)
                if doc["kind"] == "schema":
                    s = StoredSchema(doc["subject"], doc["version"], doc["id"], doc["schema"])
                    schemas[(s.subject, s.version)] = s
                else:
                    levels[doc["subject"]] = CompatibilityLevel(doc["level"])
            offset = records[-1].offset + 1
        return RegistrySnapshot(tuple(schemas.values()), levels)

    def save_schema(self, schema: StoredSchema) -> None:
        doc = {"kind": "schema", "subject": schema.subject, "version": schema.version,
               "id": schema.schema_id, "schema": schema.schema}
        with self._lock:
            self._log.append(SCHEMAS, [NewRecord(
                value=json.dumps(doc).encode(),
                key=f"schema/{schema.subject}/{schema.version}".encode())])

    def save_compatibility(self, subject: str | None, level: CompatibilityLevel) -> None:
        doc = {"kind": "config", "subject": subject, "level": str(level.value)}
        with self._lock:
            self._log.append(SCHEMAS, [NewRecord(
                value=json.dumps(doc).encode(), key=f"config/{subject or ''}".encode())])
