"""A subscription's dead-letter queue: `deadletter.<subscription>`.

A delivery that could not be sent after its last attempt is appended here unchanged (the
same Avro view and envelope headers as on `deliver.<subscription>`), with headers saying
why, after how many attempts and where it came from. The topic has one partition, so a
dead letter's id is its offset.

A replay appends the dead letters back to `deliver.<subscription>`, with a header naming
the dead letter, so they are sent again behind whatever is queued, under their original
`webhook-id` (the decision id): a receiver that got one after all recognises it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broker.delivery.envelope import DeliveryEnvelope
from broker.errors import UnknownTopicError
from broker.log.port import EventLog, Headers, LogRecord, NewRecord, TopicSpec
from broker.topics import delivery_topic

DEAD_LETTER_PREFIX = "deadletter."
H_DL_REASON = "handoff.dead_letter.reason"
H_DL_ATTEMPTS = "handoff.dead_letter.attempts"
H_DL_STATUS = "handoff.dead_letter.last_status"
H_DL_AT = "handoff.dead_letter.at_ms"
H_DL_ORIGIN = "handoff.dead_letter.origin"
H_REPLAY_OF = "handoff.replay_of"
_OWN_HEADERS = {H_DL_REASON, H_DL_ATTEMPTS, H_DL_STATUS, H_DL_AT, H_DL_ORIGIN, H_REPLAY_OF}


def dead_letter_topic(subscription_id: str) -> str:
    return f"{DEAD_LETTER_PREFIX}{subscription_id}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered delivery, as stored."""

    id: int
    envelope: DeliveryEnvelope
    reason: str
    attempts: int
    last_status: int | None
    at_ms: int
    origin: str
    """`deliver.<subscription>/<partition>/<offset>` it was read from."""
    record: LogRecord

    def summary(self) -> dict[str, Any]:
        """What the API lists: ids and why, no record values."""
        e = self.envelope
        return {"id": str(self.id), "event_id": e.event_id, "decision_id": e.decision_id,
                "event_type": e.event_type, "source": e.source, "reason": self.reason,
                "attempts": self.attempts, "last_status": self.last_status,
                "dead_lettered_at_ms": self.at_ms}


class DeadLetterQueue:
    """Appends to, reads and replays `deadletter.<subscription>` topics."""

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log

    def ensure(self, subscription_id: str) -> None:
        self._log.ensure_topic(TopicSpec(dead_letter_topic(subscription_id), partitions=1))

    def append(self, subscription_id: str, record: LogRecord, reason: str, attempts: int,
               last_status: int | None, at_ms: int) -> int:
        """Dead-letter one delivery record; returns its dead-letter id."""
        headers = (
            *_without_own(record),
            (H_DL_REASON, reason.encode()),
            (H_DL_ATTEMPTS, str(attempts).encode()),
            (H_DL_STATUS, b"" if last_status is None else str(last_status).encode()),
            (H_DL_AT, str(at_ms).encode()),
            (H_DL_ORIGIN, f"{record.topic}/{record.partition}/{record.offset}".encode()),
        )
        (result,) = self._log.append(dead_letter_topic(subscription_id), [
            NewRecord(value=record.value, key=record.key, headers=headers,
                      timestamp_ms=at_ms)])
        return result.offset

    def read(self, subscription_id: str, after: int = -1, limit: int = 100
             ) -> list[DeadLetter]:
        """Dead letters with id greater than `after`, oldest first."""
        try:
            records = self._log.read(dead_letter_topic(subscription_id), 0, after + 1, limit)
        except UnknownTopicError:
            return []
        return [self._parse(r) for r in records]

    def get(self, subscription_id: str, ids: Sequence[int]) -> list[DeadLetter]:
        """The dead letters with these ids that exist, in id order."""
        found: list[DeadLetter] = []
        for i in sorted(set(ids)):
            found.extend(d for d in self.read(subscription_id, i - 1, 1) if d.id == i)
        return found

    def replay(self, subscription_id: str, letters: Sequence[DeadLetter]) -> None:
        """Put dead letters back on `deliver.<subscription>`, in id order."""
        if not letters:
            return
        self._log.append(delivery_topic(subscription_id), [
            NewRecord(
                value=d.record.value, key=d.record.key,
                headers=(*_without_own(d.record), (
                    H_REPLAY_OF, f"{dead_letter_topic(subscription_id)}/{d.id}".encode())),
            )
            for d in letters
        ])

    @staticmethod
    def _parse(record: LogRecord) -> DeadLetter:
        status = record.header(H_DL_STATUS) or b""
        return DeadLetter(
            id=record.offset,
            envelope=DeliveryEnvelope.from_record(record),
            reason=(record.header(H_DL_REASON) or b"").decode(),
            attempts=int(record.header(H_DL_ATTEMPTS) or b"0"),
            last_status=int(status) if status else None,
            at_ms=int(record.header(H_DL_AT) or record.timestamp_ms),
            origin=(record.header(H_DL_ORIGIN) or b"").decode(),
            record=record,
        )



def _without_own(record: LogRecord) -> Headers:
    return tuple((k, v) for k, v in record.headers if k not in _OWN_HEADERS)
