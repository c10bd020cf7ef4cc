"""Keeps the policy engine's consent view in step with `events.consent`.

Every router reads every partition of the consent topic (no consumer group), so each
holds the whole view. The view is rebuilt from the topic at start; the topic is the
durable record of every grant and revocation. Each consent is taken as recorded by the
agency the broker authenticated when it was published (the ingest source header), never
by anything the event itself says.

Who may record or revoke which consent is decided once, when the consent is published
(`broker.consent_recording`), and audited there; replaying the topic here re-applies
only what was accepted, so it audits nothing.
"""

from __future__ import annotations

import logging
import threading

from broker.log.port import EventLog
from broker.topics import H_INGEST_SOURCE, ingress_topic
from policy import ConsentRecordError, ConsentView
from schemas.errors import DecodeError
from schemas.wire import WireCodec

log = logging.getLogger("handoff.consent")


class ConsentFeed:
    def __init__(self, event_log: EventLog, codec: WireCodec) -> None:
        self._log = event_log
        self._codec = codec
        self._topic = ingress_topic("consent")
        self._positions: dict[int, int] = {}
        self._lock = threading.Lock()
        self.view = ConsentView()

    def catch_up(self) -> int:
        """Apply every consent record appended since the last call; returns how many."""
        applied = 0
        with self._lock:
            # One request for every partition's end (on Kafka, one per partition was a round
            # trip each, before every router batch).
            for partition, end in enumerate(self._log.end_offsets(self._topic)):
                position = self._positions.get(partition, 0)
                while position < end:
                    records = self._log.read(self._topic, partition, position, 1000)
                    if not records:
                        break
                    for record in records:
                        source = record.header(H_INGEST_SOURCE)
                        try:
                            _, consent = self._codec.decode(record.value)
                            if source is None:
                                raise ConsentRecordError("no recording agency")
                            self.view.apply(consent, record.timestamp_ms, source.decode())
                        except (DecodeError, ConsentRecordError) as exc:
                            # The router quarantines such a record; the view goes on.
                            log.warning("skipped a consent record at partition %d offset "
                                        "%d: %s", partition, record.offset,
                                        type(exc).__name__)
                            continue
                        applied += 1
                    position = records[-1].offset + 1
                self._positions[partition] = position
        return applied
