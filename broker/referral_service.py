"""What programs ask of the referral ledger: the funnel report and the open overdue
handoffs. The report endpoint, `handoff report referrals` and the compliance console
call this, never the store.

    service = broker.api.referrals          # a ReferralService, or None without a ledger
    report = service.funnel()               # FunnelReport: aggregates, small cells hidden
    late = service.overdue(referrer="cw-hotline", limit=50)   # tuple[OverdueHandoff, ...]

Every call first catches the ledger up with the log, so it answers for what was
accepted until then. `funnel` is for evaluators (aggregates only, suppressed below the
configured threshold, which a caller may raise but never lower); `overdue` names
referrals and is for the parties' staff and compliance officers, not for evaluators.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass

from broker.clock import Clock, now_ms
from broker.config import ReferralSettings
from broker.errors import BrokerError
from broker.referral_feed import ReferralFeed
from referrals import ReferralEntry, ReferralKey
from referrals.report import FunnelReport, funnel


class ReportRequestError(BrokerError, ValueError):
    """A report asked for with a threshold below the configured one, or an unknown time
    zone."""


@dataclass(frozen=True, slots=True)
class OverdueHandoff:
    """One missed service level whose alert was raised and has not been cleared."""

    referrer: str
    referral_id: str
    receiver: str | None
    program: str | None
    service: str
    service_level: str
    """The step that is late: received, accepted, first_contact, enrolled, outcome."""
    within: str
    due_at: int
    status: str
    """The referral's status now."""
    terms_id: str | None


class ReferralService:
    """Reports over the referral ledger of one process."""

    def __init__(self, feed: ReferralFeed, settings: ReferralSettings,
                 clock: Clock = now_ms) -> None:
        self._feed = feed
        self._settings = settings
        self._clock = clock

    @property
    def threshold(self) -> int:
        """The smallest count any report shows (`referrals.report_threshold`)."""
        return self._settings.report_threshold

    def funnel(self, *, threshold: int | None = None, timezone: str | None = None,
               at_ms: int | None = None) -> FunnelReport:
        """The funnel by receiving program, referring agency and month, as of `at_ms`
        (default now), in `timezone` (default `referrals.report_timezone`)."""
        minimum = self._settings.report_threshold
        if threshold is not None and threshold < minimum:
            raise ReportRequestError(f"threshold must be at least {minimum} "
                                     "(referrals.report_threshold)")
        zone = timezone or self._settings.report_timezone
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ReportRequestError("timezone: not an IANA time zone such as "
                                     "America/Chicago") from None
        self._feed.catch_up()
        return funnel(self._feed.ledger.store.scan(), at_ms or self._clock(),
                      threshold=threshold or minimum, timezone=zone)

    def overdue(self, *, referrer: str | None = None, receiver: str | None = None,
                limit: int = 100) -> tuple[OverdueHandoff, ...]:
        """Open overdue alerts, oldest due first, of referrals made by `referrer` and/or
        received by `receiver` (both None: every one). Reads every entry: meant for a
        page of a console, not for a loop."""
        self._feed.catch_up()
        found: list[OverdueHandoff] = []
        for entry in self._feed.ledger.store.scan():
            if referrer is not None and entry.key.referrer != referrer:
                continue
            if receiver is not None and entry.receiver != receiver:
                continue
            found.extend(_open_alerts(entry))
        found.sort(key=lambda o: (o.due_at, o.referrer, o.referral_id, o.service_level))
        return tuple(found[:limit])

    def referral(self, referrer: str, referral_id: str) -> ReferralEntry | None:
        """One referral as the ledger holds it (statuses, steps, deadlines, alerts)."""
        self._feed.catch_up()
        return self._feed.ledger.entry(ReferralKey(referrer, referral_id))


def _open_alerts(entry: ReferralEntry) -> list[OverdueHandoff]:
    if entry.referral is None:
        return []
    return [OverdueHandoff(
        referrer=entry.key.referrer, referral_id=entry.key.referral_id,
        receiver=entry.receiver, program=entry.program, service=entry.referral.service,
        service_level=d.step, within=d.within, due_at=d.due_at, status=entry.status.value,
        terms_id=entry.terms_id)
        for d in entry.deadlines
        if (d.step, "RAISED") in entry.alerts and (d.step, "CLEARED") not in entry.alerts]
