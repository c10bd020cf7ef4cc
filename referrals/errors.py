"""Errors raised by the referral package.

`IllegalTransition` and `NotAParty` are what a publisher is told when a status update
does not fit the referral's life (the API answers 422); `ReferralRecordError` is a record
that lacks what the ledger needs; `LedgerStoreError` is a store that failed.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.errors import HandoffError


class ReferralError(HandoffError, ValueError):
    """Root of the referral package's refusals of input."""


class ReferralRecordError(ReferralError):
    """A record lacks a field the ledger needs, or holds a value of the wrong kind. The
    message names the field, never its value."""


class IllegalTransition(ReferralError):
    """A status update would move a referral along a path its life does not have."""

    def __init__(self, current: str, new: str, allowed: Iterable[str]) -> None:
        self.current = current
        self.new = new
        self.allowed = tuple(allowed)
        nexts = ", ".join(self.allowed) or "none: the referral is closed"
        super().__init__(f"a referral that is {current} cannot become {new} "
                         f"(allowed next: {nexts})")


class NotAParty(ReferralError):
    """An agency recorded a status of a referral it may not change."""


class UnknownReferral(ReferralError):
    """A status update answers no referral the ledger holds. The message names the
    referring agency, never the referral id (an identifier)."""

    def __init__(self, referrer: str) -> None:
        self.referrer = referrer
        super().__init__(f"no referral with this referral_id from '{referrer}' is on record: "
                         "a status answers a referral published through Handoff")


class LedgerStoreError(HandoffError):
    """The ledger store could not be read or written. Retrying later may succeed."""

    retriable = True


class OutOfOrderUpdate(IllegalTransition):
    """An update dated before updates already accepted, which it would make impossible."""

    def __init__(self, new: str, later: str) -> None:
        ReferralError.__init__(self, f"this {new} update is dated before a {later} update "
                                     f"already recorded, which could not follow it")
        self.current, self.new, self.allowed = new, later, ()
