"""Publishing one source batch through the broker's own publish path.

Each record is validated on its own, so one bad record goes to the dead-letter topic
and the rest are published; valid records of one event type are then committed together
through group commit, as the connector's agency. Event ids are deterministic (see
`derive_event_id`), which is what makes a replay after a crash harmless.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Sequence

from broker.auth import Principal, Role
from broker.ingest.publisher import (
    NotPermittedToPublishError,
    Prepared,
    Publisher,
    UnknownEventTypeError,
)
from connectors.base import FieldProblem, RecordOutcome, Rejected, SourceConfig, SourceRecord
from connectors.dead_letters import DeadLetter
from connectors.ports import DeadLetterLog
from schemas.errors import RecordValidationError

_EVENT_ID_NAMESPACE = uuid.UUID("6c1f7a52-3f0e-4b7e-9a8e-2f3d1c0b9a71")


def derive_event_id(connector: str, record: SourceRecord) -> str:
    """A UUID that depends only on the connector name and the record's identity in its
    source (`source_id`, else its position), so reading the record again yields the same
    event id and the publish path recognises the duplicate."""
    identity = record.source_id if record.source_id is not None else json.dumps(
        record.position, sort_keys=True, separators=(",", ":"), default=str)
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{connector}\x00{identity}"))


def connector_principal(config: SourceConfig) -> Principal:
    """Who a source publishes as: its agency, with a key id that names the connector in
    the audit log."""
    return Principal(f"connector:{config.name}", config.agency, frozenset({Role.PUBLISH}))


class SourceBatchPublisher:
    """Publishes the batches of one source connector."""

    def __init__(self, publisher: Publisher, config: SourceConfig,
                 dead_letters: DeadLetterLog) -> None:
        self._publisher = publisher
        self._config = config
        self._principal = connector_principal(config)
        self._dead_letters = dead_letters

    def publish(self, batch: Sequence[SourceRecord | Rejected]) -> list[RecordOutcome]:
        """Publish what can be, dead-letter the rest; return one outcome per record, in
        order. Returns only when everything is durable; raises on log failures (the
        runtime then restarts the connector and the batch is read again)."""
        outcomes: list[RecordOutcome | None] = [None] * len(batch)
        letters: list[DeadLetter] = []
        by_type: dict[str, list[tuple[int, Prepared]]] = defaultdict(list)
        for index, record in enumerate(batch):
            if isinstance(record, Rejected):
                letters.append(self._letter(record, None, record.problems))
                outcomes[index] = RecordOutcome(record, "dead_letter", None, record.problems)
                continue
            event_id = str(record.event.get("event_id") or
                           derive_event_id(self._config.name, record))
            problems: tuple[FieldProblem, ...] = ()
            prepared = None
            try:
                prepared = self._publisher.prepare_json(
                    self._principal, record.event_type,
                    [{**record.event, "event_id": event_id}], batch=False)
            except UnknownEventTypeError:
                problems = (("<event_type>", "not a registered event type"),)
            except NotPermittedToPublishError as exc:
                problems = (("<event_type>", str(exc)),)
            except RecordValidationError as exc:
                problems = tuple(exc.problems)
            if prepared is None:
                letters.append(self._letter(record, event_id, problems))
                outcomes[index] = RecordOutcome(record, "dead_letter", event_id, problems)
            else:
                by_type[record.event_type].append((index, prepared))
        # Dead letters first: once anything of the batch is published, its reasons for
        # the rest must already be on record.
        self._dead_letters.append(letters)
        for event_type, items in by_type.items():
            merged = Prepared(
                event_type,
                [i for _, p in items for i in p.event_ids],
                [r for _, p in items for r in p.records],
                tuple(c for _, p in items for c in p.consent_changes),
            )
            placed = self._publisher.submit(self._principal, merged).result()
            for (index, _), where in zip(items, placed, strict=True):
                outcomes[index] = RecordOutcome(
                    batch[index], "duplicate" if where.duplicate else "published",
                    where.event_id)
        return [o for o in outcomes if o is not None]

    def _letter(self, record: SourceRecord | Rejected, event_id: str | None,
                problems: Sequence[FieldProblem]) -> DeadLetter:
        return DeadLetter(
            connector=self._config.name, problems=tuple(problems),
            event_type=record.event_type, event_id=event_id,
            reference=record.reference, position=record.position,
        )

