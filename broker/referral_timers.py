"""The referral ledger worker: keeps the ledger caught up and fires its service-level
timers (a `Worker` of the router-role process).

Every `tick_seconds` it, under the ledger's lock:

1. catches the ledger up with the log (`ReferralFeed.catch_up_locked`), so alerts
   already on `events.handoff_overdue` (published before a crash, by this process or
   another) are known before anything is fired;
2. asks the ledger for the alerts due now (`due_alerts`: the timer index by due time,
   never a scan of the open referrals) and publishes them as `handoff_overdue` through
   the publisher, as the broker (`Publisher.publish_own`). Each alert's event id is
   derived from the referral, the service level and RAISED or CLEARED, so a firing
   repeated after a crash is the same event, which the idempotent publish keeps once;
3. audits each alert it newly published (`referral_alert`), then records the batch in
   the ledger (`record_alerts`, which removes their timers);
4. repeats while a full batch came back.

A `kill -9` anywhere leaves either nothing published (fired again after the restart) or
the alert on the log (found by step 1, not fired again): one event per deadline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from broker.audit import AuditEntry
from broker.auditor import Auditor
from broker.clock import Clock, now_ms
from broker.referral_feed import ReferralFeed
from policy.vocabulary import BROKER_AGENCY
from referrals import OverdueAlert
from referrals.events import OVERDUE
from schemas.errors import HandoffError

log = logging.getLogger("handoff.referrals")
ACTOR = "broker:referral-timers"


class PlacedEvent(Protocol):
    @property
    def event_id(self) -> str: ...

    @property
    def duplicate(self) -> bool: ...


class OwnEventPublisher(Protocol):
    """The publisher's `publish_own`: publishing as the broker agency."""

    def publish_own(self, event_type: str, items: Sequence[Mapping[str, Any]]
                    ) -> Sequence[PlacedEvent]: ...


class ReferralTimers:
    """The `referrals` worker: ledger catch-up and overdue alerts."""

    name = "referrals"

    def __init__(self, feed: ReferralFeed, publisher: OwnEventPublisher, auditor: Auditor,
                 *, tick_seconds: float = 1.0, batch: int = 1000, clock: Clock = now_ms
                 ) -> None:
        self._feed = feed
        self._publisher = publisher
        self._auditor = auditor
        self._tick_seconds = tick_seconds
        self._batch = batch
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._healthy = threading.Event()
        self._refused_version: str | None = None

    # -- Worker ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="handoff-referrals",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=20)

    def healthy(self) -> bool:
        return self._healthy.is_set()

    def _run(self) -> None:
        backoff = self._tick_seconds
        while not self._stop.is_set():
            try:
                self.tick()
                self._healthy.set()
                backoff = self._tick_seconds
            except Exception:  # top-level loop: log and try again
                self._healthy.clear()
                log.exception("referral ledger tick failed; retrying")
                backoff = min(backoff * 2, 60.0)
            self._stop.wait(backoff)

    # -- one tick ----------------------------------------------------------------------

    def tick(self) -> int:
        """Catch up, then publish every alert due now; returns how many were new."""
        published = 0
        with self._feed.locked() as ledger:
            self._feed.catch_up_locked()
            while True:
                alerts = ledger.due_alerts(self._clock(), self._batch)
                if not alerts:
                    break
                fresh = self._publish(alerts)
                if fresh is None:
                    break
                published += len(fresh)
                self._audit(fresh)
                ledger.record_alerts(alerts)
                if len(alerts) < self._batch:
                    break
        return published

    def _publish(self, alerts: list[OverdueAlert]) -> list[OverdueAlert] | None:
        """Publish; the alerts newly on the log, or None when the bundle in force does
        not let the broker publish them (logged once per refusal)."""
        try:
            placed = self._publisher.publish_own(OVERDUE, [a.record() for a in alerts])
        except HandoffError as exc:
            if exc.retriable:
                raise
            if self._refused_version != str(exc):
                self._refused_version = str(exc)
                log.error("overdue alerts are not published: %s (declare the agency "
                          "'%s', kind broker, publishing %s, in agencies.yaml)", exc,
                          BROKER_AGENCY, OVERDUE)
            return None
        self._refused_version = None
        new = {p.event_id for p in placed if not p.duplicate}
        return [a for a in alerts if a.event_id in new]

    def _audit(self, alerts: list[OverdueAlert]) -> None:
        self._auditor.write([AuditEntry(
            kind="referral_alert", at_ms=self._auditor.now(),
            subject=self._auditor.subject(a.subject_id), source=BROKER_AGENCY,
            outcome=a.alert.lower(), event_id=a.event_id, actor=ACTOR,
            detail={"referrer": a.key.referrer, "receiver": a.receiver,
                    "program_id": a.program, "terms_id": a.terms_id,
                    "service_level": a.step, "within": a.within, "due_at": a.due_at,
                    "settled_at": a.settled_at, "status": a.status.value},
        ) for a in alerts])
