"""The bundle's referral terms, compiled for the ledger: which terms a referral falls
under, and the deadlines they set.

Built once per bundle version (`ReferralPolicy.from_bundle`); the ledger asks it once per
referral, when the referral arrives. Deadlines are stored with the entry, so a later
bundle does not move the deadlines of referrals already made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from policy.bundle import PolicyBundle
from policy.model import Agreement
from policy.referral_terms import (
    UTC_CALENDAR,
    BusinessCalendar,
    FeedbackTerms,
    ReferralTerms,
    ServiceLevel,
    Step,
)
from referrals.calendar import due_at
from referrals.entry import Deadline


@dataclass(frozen=True)
class CompiledTerms:
    """One `referrals.yaml` entry joined with its agreement and calendar."""

    id: str
    referrer: str
    receiver: str
    services: frozenset[str]
    """Empty: every service."""
    calendar: BusinessCalendar
    levels: tuple[tuple[Step, ServiceLevel], ...]
    feedback: FeedbackTerms | None
    effective_ms: int
    expires_ms: int | None

    def applies(self, referrer: str, receiver: str | None, service: str, at_ms: int) -> bool:
        return (referrer == self.referrer
                and (receiver is None or receiver == self.receiver)
                and (not self.services or service in self.services)
                and self.effective_ms <= at_ms
                and (self.expires_ms is None or at_ms < self.expires_ms))

    def deadlines(self, anchor_ms: int) -> tuple[Deadline, ...]:
        return tuple(Deadline(step, due_at(anchor_ms, level, self.calendar), level.label())
                     for step, level in self.levels)


class ReferralPolicy:
    """Every referral terms entry of one bundle, ready to match referrals."""

    def __init__(self, terms: Iterable[CompiledTerms] = (), version: str = "none") -> None:
        self.terms = tuple(terms)
        self.version = version
        self._by_id = {t.id: t for t in self.terms}

    @classmethod
    def from_bundle(cls, bundle: PolicyBundle) -> ReferralPolicy:
        return cls((_compile(t, bundle.agreements[t.agreement], bundle.calendars)
                    for t in bundle.referrals.values() if t.agreement in bundle.agreements),
                   bundle.version)

    def get(self, terms_id: str) -> CompiledTerms | None:
        return self._by_id.get(terms_id)

    def terms_for(self, referrer: str, receiver: str | None, service: str,
                  at_ms: int) -> CompiledTerms | None:
        """The terms a referral falls under: the one entry whose agreement runs from the
        referrer (to the named receiver, if any) and covers the service, in force when
        the referral arrived. None when no entry, or more than one, fits."""
        found = [t for t in self.terms if t.applies(referrer, receiver, service, at_ms)]
        return found[0] if len(found) == 1 else None

    def feedback_allows(self, terms_id: str | None, status: str,
                        business_status: str | None) -> bool:
        """Whether a status update flows back to the referrer under the referral's
        terms. No terms or no feedback terms: nothing flows back."""
        terms = self._by_id.get(terms_id) if terms_id is not None else None
        if terms is None or terms.feedback is None:
            return False
        return terms.feedback.allows(status, business_status)


def _compile(terms: ReferralTerms, agreement: Agreement,
             calendars: dict[str, BusinessCalendar]) -> CompiledTerms:
    calendar = calendars.get(terms.calendar, UTC_CALENDAR) if terms.calendar else UTC_CALENDAR
    return CompiledTerms(
        id=terms.id, referrer=agreement.source, receiver=agreement.recipient,
        services=frozenset(terms.services), calendar=calendar, levels=terms.levels,
        feedback=terms.feedback, effective_ms=agreement.effective_ms,
        expires_ms=agreement.expires_ms)
