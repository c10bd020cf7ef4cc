"""The publish path: validate, assign ids, then group-commit to `events.<type>`.

Either every event of a request is appended or none is: the whole request is validated
before anything is handed to the committer, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from broker.auditing import Auditor
from broker.auth import Principal
from broker.consent_recording import ConsentChangeRecord, ConsentRecording, ConsentRefusedError
from broker.event_types import EventTypes
from broker.ingest.group_commit import GroupCommitter, Placed
from broker.log.port import NewRecord
from broker.metrics import Metrics
from broker.topics import H_INGEST_KEY_ID, H_INGEST_SOURCE, ingress_topic
from schemas.datestrings import date_string_problems
from schemas.errors import DecodeError, RecordValidationError
from schemas.jsonform import record_from_json
from schemas.tags import TAGS
from schemas.wire import WireCodec


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated, encoded request, ready to commit."""

    event_type: str
    event_ids: list[str]
    records: list[NewRecord]
    consent_changes: tuple[ConsentChangeRecord, ...] = ()
    """Checked grants and revocations, audited once the request is durable."""


class Publisher:
    def __init__(
        self,
        event_types: EventTypes,
        codec: WireCodec,
        committer: GroupCommitter,
        auditor: Auditor,
        metrics: Metrics,
        consents: ConsentRecording | None = None,
    ) -> None:
        self._types = event_types
        self._codec = codec
        self._committer = committer
        self._auditor = auditor
        self._metrics = metrics
        self._consents = consents

    # -- validation -----------------------------------------------------------------------

    def prepare_json(
        self, principal: Principal, event_type: str, items: Sequence[Any], batch: bool
    ) -> Prepared:
        """Validate and encode every event; refuse the whole request on any problem."""
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
        changes = self._check_consents(principal, event_type, records, batch)
        encoded = [self._codec.encode(registered.schema_id, r) for r in records]
        return self._prepared(principal, event_type, records, encoded, changes)

    def prepare_wire(self, principal: Principal, event_type: str, payload: bytes) -> Prepared:
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
        problems += date_string_problems(registered.schema, record)
        if problems:
            self._refuse(principal, event_type, "invalid", [p for p, _ in problems])
            raise RecordValidationError(problems)
        changes = self._check_consents(principal, event_type, [record], False)
        return self._prepared(principal, event_type, [record], [payload], changes)

    def _check_consents(self, principal: Principal, event_type: str,
                        records: list[dict[str, Any]], batch: bool
                        ) -> tuple[ConsentChangeRecord, ...]:
        """Who may record or revoke these consents (see `broker.consent_recording`)."""
        if event_type != "consent" or self._consents is None:
            return ()
        try:
            return self._consents.check(principal, records, batch)
        except ConsentRefusedError:
            self._metrics.publish_refused.labels("consent_refused").inc()
            raise

    def _prepared(self, principal: Principal, event_type: str,
                  records: list[dict[str, Any]], encoded: list[bytes],
                  changes: tuple[ConsentChangeRecord, ...] = ()) -> Prepared:
        headers = ((H_INGEST_SOURCE, principal.agency.encode()),
                   (H_INGEST_KEY_ID, principal.key_id.encode()))
        return Prepared(
            event_type,
            [str(r["event_id"]) for r in records],
            # Keyed by the subject's pseudonym: same partition, so per-subject order, without
            # leaving the identifier readable in the log's keys (values may be encrypted,
            # keys never are).
            [NewRecord(value=value, key=self._auditor.subject(str(r["subject_id"])).encode(),
                       headers=headers)
             for r, value in zip(records, encoded, strict=True)],
            changes,
        )

    # -- committing -----------------------------------------------------------------------

    def submit(self, principal: Principal, prepared: Prepared) -> Future[list[Placed]]:
        """Hand a prepared request to group commit; resolves once durable."""
        future = self._committer.submit(principal.agency, ingress_topic(prepared.event_type),
                                        prepared.event_ids, prepared.records)
        counter = self._metrics.events_ingested.labels(prepared.event_type, principal.agency)

        def count(done: Future[list[Placed]]) -> None:
            if not done.cancelled() and done.exception() is None:
                counter.inc(sum(not p.duplicate for p in done.result()))

        future.add_done_callback(count)
        consents, changes = self._consents, prepared.consent_changes
        if consents is not None and changes:
            # Runs before the caller hears of success: the audit record precedes the 202.
            def audit(done: Future[list[Placed]]) -> None:
                if not done.cancelled() and done.exception() is None:
                    consents.accepted(principal, changes, done.result())

            future.add_done_callback(audit)
        return future

    def publish_json(self, principal: Principal, event_type: str, items: Sequence[Any],
                     batch: bool = True) -> list[Placed]:
        """Validate and commit, blocking until durable (for callers outside the API)."""
        return self.submit(principal, self.prepare_json(principal, event_type, items,
                                                        batch)).result()

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
