"""The referral ledger as a view of the log, caught up on demand.

`ReferralFeed.catch_up()` reads the `referral`, `referral_status`, `enrollment` and
`handoff_overdue` topics from the positions the ledger store holds to their ends, turns
each record into a ledger event (the publishing agency is the ingest source header, the
time it reached the broker the record's log timestamp) and applies them, entries and
positions in one store write per read batch. The router process's timer worker calls it
every tick; the publisher calls it before checking a status update, so a status checked
right after its referral was accepted finds the referral, in any process.

Processes that share a data directory share the store file (`referral-ledger.db`):
catching up and recording alerts happen under an exclusive lock on
`referral-ledger.lock`, so two processes never compute an entry from a state the other
is about to replace. On the Kafka backend the file is a cache of the topics: delete it
and the next catch-up rebuilds it from offset 0, alerts already published included.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from broker.log.port import EventLog, LogRecord
from broker.topics import H_INGEST_SOURCE, ingress_topic
from policy import PolicyBundle
from referrals import LedgerStore, Position, ReferralLedger, ReferralPolicy, ledger_event
from referrals.errors import ReferralRecordError
from referrals.events import EVENT_TYPES, LedgerEvent
from schemas.errors import DecodeError
from schemas.wire import WireCodec

log = logging.getLogger("handoff.referrals")
READ_BATCH = 1000
LEDGER_FILE = "referral-ledger.db"
LOCK_FILE = "referral-ledger.lock"


class ReferralFeed:
    """One process's handle on the referral ledger, kept in step with the log."""

    def __init__(self, event_log: EventLog, codec: WireCodec, store: LedgerStore,
                 bundle: Callable[[], PolicyBundle], lock_path: Path) -> None:
        self._log = event_log
        self._codec = codec
        self._bundle = bundle
        first = bundle()
        self._version = first.version
        self.ledger = ReferralLedger(store, ReferralPolicy.from_bundle(first))
        self._lock = threading.Lock()
        self._lock_path = lock_path

    @contextmanager
    def locked(self) -> Iterator[ReferralLedger]:
        """Hold the ledger for a read-compute-write against every other thread and every
        other process on this data directory."""
        with self._lock:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield self.ledger
            finally:
                os.close(fd)   # closing drops the lock

    def catch_up(self) -> int:
        """Apply what the four topics gained since the last catch-up; returns how many
        records were read."""
        with self.locked():
            return self.catch_up_locked()

    def catch_up_locked(self) -> int:
        """`catch_up` for a caller already inside `locked()`."""
        self._follow_policy()
        positions = self.ledger.positions()
        read = 0
        for event_type in EVENT_TYPES:
            topic = ingress_topic(event_type)
            for partition in range(self._log.partitions(topic)):
                position = positions.get((topic, partition), 0)
                end = self._log.end_offset(topic, partition)
                while position < end:
                    records = self._log.read(topic, partition, position, READ_BATCH)
                    if not records:
                        break
                    events = [e for r in records if (e := self._event(event_type, r))]
                    position = records[-1].offset + 1
                    self.ledger.apply(events, [Position(topic, partition, position)])
                    read += len(records)
        return read

    def _follow_policy(self) -> None:
        """Referrals that arrive after a reload get the new bundle's terms."""
        bundle = self._bundle()
        if bundle.version != self._version:
            self.ledger.use_policy(ReferralPolicy.from_bundle(bundle))
            self._version = bundle.version

    def _event(self, event_type: str, record: LogRecord) -> LedgerEvent | None:
        source = record.header(H_INGEST_SOURCE)
        try:
            _, value = self._codec.decode(record.value)
            if source is None:
                raise ReferralRecordError("no publishing agency")
            return ledger_event(event_type, value, source.decode(),
                                logged_at_ms=record.timestamp_ms)
        except (DecodeError, ReferralRecordError) as exc:
            # The router quarantines an undecodable record; the ledger goes on.
            log.warning("referral ledger skipped a %s record at partition %d offset %d: %s",
                        event_type, record.partition, record.offset, type(exc).__name__)
            return None
