"""The publish path: validate, assign ids, de-duplicate, append to `events.<type>`.

Either every event of a request is appended or none is: validation of the whole batch
happens before the single append, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broker.auditing import Auditor
from broker.auth import Principal
from broker.event_types import EventTypes
from broker.ingest.idempotency import Accepted, IdempotencyIndex
from broker.log.port import EventLog, NewRecord
from broker.metrics import Metrics
from broker.topics import H_INGEST_KEY_ID, H_INGEST_SOURCE, ingress_topic
from schemas.errors import DecodeError, RecordValidationError
from schemas.jsonform import record_from_json
from schemas.tags import TAGS
from schemas.wire import WireCodec


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    event_id: str
    topic: str
    partition: int
    offset: int
    duplicate: bool

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "topic": self.topic, "partition": self.partition,
                "offset": self.offset, "duplicate": self.duplicate}


class Publisher:
    def __init__(
        self,
        log: EventLog,
        event_types: EventTypes,
        codec: WireCodec,
        idempotency: IdempotencyIndex,
        auditor: Auditor,
        metrics: Metrics,
    ) -> None:
        self._log = log
        self._types = event_types
        self._codec = codec
        self._idempotency = idempotency
        self._auditor = auditor
        self._metrics = metrics
        # One publish at a time per broker process: the duplicate check, the append and
        # remembering the ids must not interleave with another request for the same ids.
        self._lock = threading.Lock()

    def publish_json(
        self, principal: Principal, event_type: str, items: Sequence[Any], batch: bool
    ) -> list[PublishOutcome]:
        registered = self._types.latest(event_type)
        records: list[dict[str, Any]] = []
        problems: list[tuple[str, str]] = []
        for i, item in enumerate(items):
            prefix = f"events[{i}]." if batch else ""
            if isinstance(item, dict) and not item.get("event_id"):
                item = {**item, "event_id": str(uuid.uuid4())}
            try:
                record = record_from_json(registered.schema.schema, item)
            except RecordValidationError as exc:
                problems.extend((f"{prefix}{p}".rstrip("."), m) for p, m in exc.problems)
                continue
            problems.extend((f"{prefix}{p}", m) for p, m in _semantic_problems(event_type,
                                                                              record))
            records.append(record)
        if problems:
            self._refuse(principal, event_type, "invalid", [p for p, _ in problems])
            raise RecordValidationError(problems)
        encoded = [self._codec.encode(registered.schema_id, r) for r in records]
        return self._append(principal, event_type, records, encoded)

    def publish_wire(self, principal: Principal, event_type: str, payload: bytes
                     ) -> PublishOutcome:
        try:
            schema_id, record = self._codec.decode(payload)
        except DecodeError:
            self._refuse(principal, event_type, "undecodable", [])
            raise
        registered = self._types.by_id(schema_id)
        if registered is None or registered.event_type != event_type:
            self._refuse(principal, event_type, "wrong_schema", [])
            raise DecodeError(
                f"schema id {schema_id} is not a registered version of '{event_type}'"
            )
        problems = _semantic_problems(event_type, record)
        if problems:
            self._refuse(principal, event_type, "invalid", [p for p, _ in problems])
            raise RecordValidationError(problems)
        return self._append(principal, event_type, [record], [payload])[0]

    def _append(
        self, principal: Principal, event_type: str, records: list[dict[str, Any]],
        encoded: list[bytes],
    ) -> list[PublishOutcome]:
        topic = ingress_topic(event_type)
        ids = [str(r["event_id"]) for r in records]
        with self._lock:
            seen = self._idempotency.lookup(principal.agency, ids)
            fresh: list[int] = []
            first_in_request: dict[str, int] = {}
            for i, event_id in enumerate(ids):
                if event_id not in seen and event_id not in first_in_request:
                    first_in_request[event_id] = i
                    fresh.append(i)
            source = principal.agency.encode()
            key_id = principal.key_id.encode()
            new_records = [
                NewRecord(
                    value=encoded[i],
                    key=str(records[i]["subject_id"]).encode(),
                    headers=((H_INGEST_SOURCE, source), (H_INGEST_KEY_ID, key_id)),
                )
                for i in fresh
            ]
            results = self._log.append(topic, new_records) if new_records else []
            accepted = {
                ids[i]: Accepted(topic, r.partition, r.offset)
                for i, r in zip(fresh, results, strict=True)
            }
            if accepted:
                self._idempotency.remember(principal.agency, accepted)
        if accepted:
            self._metrics.events_ingested.labels(event_type, principal.agency).inc(len(accepted))
        known = {**seen, **accepted}
        fresh_set = set(fresh)
        return [
            PublishOutcome(event_id, topic, known[event_id].partition, known[event_id].offset,
                           duplicate=i not in fresh_set)
            for i, event_id in enumerate(ids)
        ]

    def _refuse(self, principal: Principal, event_type: str, reason: str,
                fields: list[str]) -> None:
        self._metrics.publish_refused.labels(reason).inc()
        self._auditor.publish_refused(principal, event_type, reason, fields)


def _semantic_problems(event_type: str, record: dict[str, Any]) -> list[tuple[str, str]]:
    """Rules Avro cannot express."""
    problems: list[tuple[str, str]] = []
    if not str(record.get("subject_id", "")).strip():
        problems.append(("subject_id", "must not be empty"))
    if event_type == "consent":
        unknown = [c for c in record.get("categories", []) if c != "*" and c not in TAGS]
        if unknown:
            problems.append(("categories", f"{len(unknown)} unknown data categor"
                             f"{'y' if len(unknown) == 1 else 'ies'}; allowed: "
                             f"{', '.join(sorted(TAGS))} or '*'"))
        if record.get("action") == "GRANT" and not record.get("recipients"):
            problems.append(("recipients", "a grant must name at least one recipient"))
    return problems
