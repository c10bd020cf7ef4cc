"""Shared builders for the referral tests: ledger events, a small policy, the demo's.

Times are epoch milliseconds. `T0` is Monday 9 November 2026, 10:05 UTC (04:05 in
Madison); `DAY` and `HOUR` are in milliseconds.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from pathlib import Path

from policy.loader import load_bundle
from policy.referral_terms import UTC_CALENDAR, ServiceLevel
from referrals.events import (
    AlertRecorded,
    EnrollmentReported,
    ReferralKey,
    ReferralMade,
    StatusReported,
)
from referrals.ledger import ReferralLedger
from referrals.lifecycle import BusinessStatus, Reason, Status
from referrals.store import InMemoryLedgerStore
from referrals.terms import CompiledTerms, ReferralPolicy
from schemas.catalog import SchemaCatalog

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "examples" / "demo" / "policy"
CATALOG = SchemaCatalog.load()
DEMO_BUNDLE = load_bundle(DEMO_DIR, CATALOG)
DEMO_POLICY = ReferralPolicy.from_bundle(DEMO_BUNDLE)

T0 = 1794218700000
HOUR = 3_600_000
DAY = 24 * HOUR
REFERRER, RECEIVER = "cw-hotline", "hv-nfp"
MADISON = zoneinfo.ZoneInfo("America/Chicago")

SIMPLE_TERMS = CompiledTerms(
    id="simple", referrer=REFERRER, receiver=RECEIVER, services=frozenset(),
    calendar=UTC_CALENDAR,
    levels=(("received", ServiceLevel(amount=24, unit="hours")),
            ("first_contact", ServiceLevel(amount=3, unit="days")),
            ("outcome", ServiceLevel(amount=30, unit="days"))),
    feedback=None, effective_ms=0, expires_ms=None)
SIMPLE_POLICY = ReferralPolicy([SIMPLE_TERMS], "test")
"""Received within 24 hours, first contact by the end of the 3rd UTC day after, outcome
by the end of the 30th: easy to count by hand."""

_ids = itertools.count()


def next_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def key(referral_id: str = "HL-1", referrer: str = REFERRER) -> ReferralKey:
    return ReferralKey(referrer, referral_id)


def referral(referral_id: str = "HL-1", at: int = T0, *, event_id: str | None = None,
             receiver: str | None = RECEIVER, service: str = "HOME_VISITING",
             referrer: str = REFERRER, program: str | None = "nfp-dane",
             sent_at: int | None = None, subject: str = "MPI-1") -> ReferralMade:
    return ReferralMade(event_id or next_id("ref"), ReferralKey(referrer, referral_id),
                        subject, receiver, program, service, "ROUTINE", at,
                        at if sent_at is None else sent_at)


def status(state: Status | str, at: int, referral_id: str = "HL-1", *,
           business: BusinessStatus | str | None = None, reason: Reason | str | None = None,
           by: str = RECEIVER, event_id: str | None = None, referrer: str = REFERRER,
           program: str | None = None) -> StatusReported:
    return StatusReported(
        event_id or next_id("st"), ReferralKey(referrer, referral_id), "MPI-1", by, program,
        Status(state), None if business is None else BusinessStatus(business),
        None if reason is None else Reason(reason), at)


def enrollment(at: int, referral_id: str = "HL-1", *, referrer: str | None = None,
               by: str = RECEIVER, event_id: str | None = None) -> EnrollmentReported:
    return EnrollmentReported(event_id or next_id("en"), referral_id, by, referrer, "MPI-1",
                              "nfp-dane", at)


def alert(step: str, which: str, referral_id: str = "HL-1", at: int = T0
          ) -> AlertRecorded:
    from referrals.alerts import alert_event_id
    k = key(referral_id)
    return AlertRecorded(alert_event_id(k, step, which), k, step,  # type: ignore[arg-type]
                         "RAISED" if which == "RAISED" else "CLEARED", at)


def local_ms(text: str) -> int:
    """Epoch milliseconds of a wall-clock time in Madison (America/Chicago)."""
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=MADISON).timestamp() * 1000)


def local_text(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, MADISON).strftime("%Y-%m-%d %H:%M")


def ledger_with(groups: list[tuple[str, str, int, int, int, int]]) -> ReferralLedger:
    """A ledger under `SIMPLE_POLICY` holding the given funnel, for report tests.

    groups: (program, referrer, referred, accepted, contacted, enrolled); each stage a
    subset of the one before. Accepted after 20 hours, contacted after 2 days, enrolled
    after 5: all in time for the simple terms, so only referrals that stop short of
    enrolling are overdue (their outcome, 30 days)."""
    ledger = ReferralLedger(InMemoryLedgerStore(), SIMPLE_POLICY)
    events = []
    for program, referrer, referred, accepted, contacted, enrolled in groups:
        for n in range(referred):
            rid = f"{program}-{referrer}-{n}"
            at = T0 + n * HOUR
            events.append(referral(rid, at=at, program=program, referrer=referrer,
                                   receiver="hv-nfp"))
            steps = [("ACCEPTED", None, 20 * HOUR)] if n < accepted else []
            if n < contacted:
                steps.append(("IN_PROGRESS", "CONTACTED", 2 * DAY))
            if n < enrolled:
                steps.append(("IN_PROGRESS", "ENROLLED", 5 * DAY))
            events += [status(s, at + d, rid, business=b, referrer=referrer)
                       for s, b, d in steps]
    ledger.apply(events)
    return ledger
