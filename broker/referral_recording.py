"""The publish-time check on `referral_status` events.

The publisher calls `check` for every `referral_status` event before anything is
appended, whatever the channel (the HTTP API, a connector batch, the FHIR endpoint):

- `recorded_by` must be the authenticated publishing agency, never another;
- the status, business status and reason must fit together (`referrals.lifecycle`);
- the update must fit the referral's life as the ledger knows it, after the ledger has
  caught up with the log (so a status sent right after its referral finds it, in this
  process or another): the referral must be on record, the publisher a party to it
  (the receiver records, the referrer may only cancel), the transition one the state
  machine has, and the update not dated before updates it would contradict. The updates
  of one request are checked in order, each against the referral as those before it
  leave it.

Anything else refuses the whole request: 403 `not-a-party` when an agency records for a
referral it is not a party to, 422 `referral-refused` otherwise, naming the fields and,
for a transition, both statuses. The publisher audits the refusal (`publish_refused`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from broker.auth import Principal
from broker.referral_feed import ReferralFeed
from referrals import (
    IllegalTransition,
    NotAParty,
    ReferralError,
    ReferralRecordError,
    UnknownReferral,
    ledger_event,
)
from referrals.events import STATUS, StatusReported
from referrals.lifecycle import update_problems
from schemas.errors import RecordValidationError

_QUOTED = re.compile(r"'([a-z_]+)'")


class ReferralRefusedError(RecordValidationError):
    """A status update does not fit its referral (422). `reason` is the audit reason."""

    def __init__(self, problems: list[tuple[str, str]], reason: str) -> None:
        super().__init__(problems)
        self.reason = reason


class NotAPartyError(ReferralRefusedError):
    """The publishing agency may not record this status (403)."""


class ReferralRecording:
    """Checks status updates against the referral ledger at publish time."""

    def __init__(self, feed: ReferralFeed) -> None:
        self._feed = feed

    def check(self, principal: Principal, records: Sequence[Mapping[str, Any]],
              batch: bool) -> None:
        """Raise `NotAPartyError` or `ReferralRefusedError` unless every status update
        of one request may be recorded by `principal`'s agency."""
        problems: list[tuple[str, str, str]] = []
        updates: list[tuple[str, StatusReported]] = []
        for index, record in enumerate(records):
            prefix = f"events[{index}]." if batch else ""
            if record.get("recorded_by") != principal.agency:
                problems.append((f"{prefix}recorded_by", "must be the publishing agency "
                                 f"'{principal.agency}'", "not_a_party"))
                continue
            wrong = update_problems(str(record.get("status")), record.get("business_status"),
                                    record.get("reason"))
            if wrong:
                problems.extend((f"{prefix}{f}", m, "invalid") for f, m in wrong)
                continue
            try:
                event = ledger_event(STATUS, record, principal.agency, logged_at_ms=0)
            except ReferralRecordError as exc:
                named = _QUOTED.search(str(exc))
                problems.append((f"{prefix}{named.group(1) if named else ''}", str(exc),
                                 "invalid"))
                continue
            assert isinstance(event, StatusReported)
            updates.append((prefix, event))
        if updates:
            self._feed.catch_up()
            for position, refusal in self._feed.ledger.refusals([u for _, u in updates]):
                field, reason = _where(refusal)
                problems.append((f"{updates[position][0]}{field}", str(refusal), reason))
        if not problems:
            return
        found = [(f, m) for f, m, _ in problems]
        reasons = [r for _, _, r in problems]
        if "not_a_party" in reasons:
            raise NotAPartyError(found, "not_a_party")
        raise ReferralRefusedError(found, reasons[0])


def _where(refusal: ReferralError) -> tuple[str, str]:
    """The field a ledger refusal is about, and the audit reason."""
    if isinstance(refusal, NotAParty):
        return "recorded_by", "not_a_party"
    if isinstance(refusal, UnknownReferral):
        return "referral_id", "unknown_referral"
    if isinstance(refusal, IllegalTransition):
        return "status", "illegal_transition"
    return "status", "invalid"
