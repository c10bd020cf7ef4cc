"""A referral's life: the FHIR Task state machine, its business statuses and reasons.

Statuses are FHIR R4 `Task.status` codes as the Gravity Project's SDOH Clinical Care guide
uses them for referral management (SDOHCC Task For Referral Management), one to one:

    requested -> received -> accepted | rejected
    accepted  -> in-progress | on-hold -> completed | failed | cancelled

A referral event creates a referral in `REQUESTED`; the receiving agency moves it on with
`referral_status` events; either party may cancel it while it is open. Within a status,
`business_status` says where the work stands (a contact attempted, the family reached,
waitlisted, enrolled, unable to reach) and `reason` says why a referral was declined, put
on hold, failed or was cancelled, from a closed list.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from referrals.errors import IllegalTransition, NotAParty


class Status(StrEnum):
    """A referral's status; the values are the `referral_status.status` symbols."""

    REQUESTED = "REQUESTED"
    RECEIVED = "RECEIVED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    IN_PROGRESS = "IN_PROGRESS"
    ON_HOLD = "ON_HOLD"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def fhir(self) -> str:
        return FHIR_TASK_STATUS[self]

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


class BusinessStatus(StrEnum):
    CONTACT_ATTEMPTED = "CONTACT_ATTEMPTED"
    CONTACTED = "CONTACTED"
    WAITLISTED = "WAITLISTED"
    ENROLLED = "ENROLLED"
    UNABLE_TO_REACH = "UNABLE_TO_REACH"


class Reason(StrEnum):
    NOT_ELIGIBLE = "NOT_ELIGIBLE"
    NO_CAPACITY = "NO_CAPACITY"
    OUTSIDE_SERVICE_AREA = "OUTSIDE_SERVICE_AREA"
    ALREADY_SERVED = "ALREADY_SERVED"
    INCOMPLETE_REFERRAL = "INCOMPLETE_REFERRAL"
    UNABLE_TO_REACH = "UNABLE_TO_REACH"
    FAMILY_DECLINED = "FAMILY_DECLINED"
    FAMILY_MOVED = "FAMILY_MOVED"
    REFERRAL_WITHDRAWN = "REFERRAL_WITHDRAWN"
    DUPLICATE = "DUPLICATE"
    OTHER = "OTHER"


S, B, R = Status, BusinessStatus, Reason

FHIR_TASK_STATUS: Mapping[Status, str] = {
    S.REQUESTED: "requested",
    S.RECEIVED: "received",
    S.ACCEPTED: "accepted",
    S.REJECTED: "rejected",
    S.IN_PROGRESS: "in-progress",
    S.ON_HOLD: "on-hold",
    S.COMPLETED: "completed",
    S.FAILED: "failed",
    S.CANCELLED: "cancelled",
}
"""Status -> FHIR R4 Task.status (http://hl7.org/fhir/task-status), one to one."""
STATUS_FROM_FHIR: Mapping[str, Status] = {code: s for s, code in FHIR_TASK_STATUS.items()}

TERMINAL = frozenset({S.REJECTED, S.COMPLETED, S.FAILED, S.CANCELLED})

TRANSITIONS: Mapping[Status, tuple[Status, ...]] = {
    S.REQUESTED: (S.RECEIVED, S.ACCEPTED, S.REJECTED, S.CANCELLED),
    S.RECEIVED: (S.RECEIVED, S.ACCEPTED, S.REJECTED, S.CANCELLED),
    S.ACCEPTED: (S.ACCEPTED, S.IN_PROGRESS, S.ON_HOLD, S.FAILED, S.CANCELLED),
    S.IN_PROGRESS: (S.IN_PROGRESS, S.ON_HOLD, S.COMPLETED, S.FAILED, S.CANCELLED),
    S.ON_HOLD: (S.ON_HOLD, S.IN_PROGRESS, S.FAILED, S.CANCELLED),
    S.REJECTED: (),
    S.COMPLETED: (),
    S.FAILED: (),
    S.CANCELLED: (),
}
"""Where a referral may go from each status. Staying in an open status is allowed (a
second contact attempt, a change of business status); a closed referral stays closed."""

BUSINESS_STATUSES: Mapping[Status, frozenset[BusinessStatus | None]] = {
    S.REQUESTED: frozenset({None}),
    S.RECEIVED: frozenset({None}),
    S.ACCEPTED: frozenset({None, B.CONTACT_ATTEMPTED, B.WAITLISTED}),
    S.IN_PROGRESS: frozenset({None, B.CONTACT_ATTEMPTED, B.CONTACTED, B.UNABLE_TO_REACH,
                              B.ENROLLED}),
    S.ON_HOLD: frozenset({None, B.WAITLISTED, B.CONTACTED}),
    S.COMPLETED: frozenset({None, B.ENROLLED}),
    S.FAILED: frozenset({None, B.UNABLE_TO_REACH}),
    S.REJECTED: frozenset({None}),
    S.CANCELLED: frozenset({None}),
}
"""Which business statuses each status may carry."""

REASONS: Mapping[Status, frozenset[Reason]] = {
    S.REJECTED: frozenset({R.NOT_ELIGIBLE, R.NO_CAPACITY, R.OUTSIDE_SERVICE_AREA,
                           R.ALREADY_SERVED, R.INCOMPLETE_REFERRAL, R.OTHER}),
    S.FAILED: frozenset({R.UNABLE_TO_REACH, R.FAMILY_DECLINED, R.FAMILY_MOVED,
                         R.NOT_ELIGIBLE, R.OTHER}),
    S.CANCELLED: frozenset({R.REFERRAL_WITHDRAWN, R.FAMILY_DECLINED, R.FAMILY_MOVED,
                            R.DUPLICATE, R.OTHER}),
    S.ON_HOLD: frozenset({R.NO_CAPACITY, R.OTHER}),
}
"""The reasons each status may give; statuses not listed take no reason."""
REASON_REQUIRED = frozenset({S.REJECTED, S.FAILED})
"""The SDOHCC guide asks for Task.statusReason when a task is rejected or failed."""

CONTACT_STATUSES = frozenset({B.CONTACT_ATTEMPTED, B.CONTACTED, B.UNABLE_TO_REACH,
                              B.ENROLLED})
"""Business statuses that show the receiver reached out to the family."""
CONTACT_REASONS = frozenset({R.UNABLE_TO_REACH, R.FAMILY_DECLINED})
"""Reasons that show the receiver reached out (a family can only decline when asked)."""


def update_problems(status: str, business_status: str | None, reason: str | None
                    ) -> list[tuple[str, str]]:
    """What is wrong with one status update on its own, as (field, message) pairs."""
    problems: list[tuple[str, str]] = []
    try:
        current = Status(status)
    except ValueError:
        return [("status", "unknown status")]
    if current is S.REQUESTED:
        problems.append(("status", "REQUESTED is set by the referral itself, not by a "
                                   "status update"))
    business = None
    if business_status is not None:
        try:
            business = BusinessStatus(business_status)
        except ValueError:
            problems.append(("business_status", "unknown business status"))
    if business is not None and business not in BUSINESS_STATUSES[current]:
        allowed = sorted(b for b in BUSINESS_STATUSES[current] if b is not None)
        problems.append(("business_status", f"a {current} referral cannot be {business} "
                                             f"(allowed: {', '.join(allowed) or 'none'})"))
    if reason is None:
        if current in REASON_REQUIRED:
            problems.append(("reason", f"a {current} referral needs a reason "
                                       f"({', '.join(sorted(REASONS[current]))})"))
        return problems
    try:
        given = Reason(reason)
    except ValueError:
        return [*problems, ("reason", "unknown reason")]
    allowed_reasons = REASONS.get(current, frozenset())
    if given not in allowed_reasons:
        problems.append(("reason", f"{given} is not a reason for a {current} referral "
                                   f"(allowed: {', '.join(sorted(allowed_reasons)) or 'none'})"))
    return problems


def check_transition(current: Status, new: Status) -> None:
    """Raise `IllegalTransition` naming both statuses unless `current -> new` is allowed."""
    allowed = TRANSITIONS[current]
    if new not in allowed:
        raise IllegalTransition(current.value, new.value, (s.value for s in allowed))


def check_party(new: Status, recorded_by: str, referrer: str, receiver: str | None) -> None:
    """The receiver records every status; the referrer may only cancel its referral.

    `receiver` is None while the ledger does not know it (the referral named no agency
    and no status has been recorded yet); then any agency but the referrer may record.
    """
    if recorded_by == referrer:
        if new is not S.CANCELLED:
            raise NotAParty(f"the referring agency '{referrer}' may only cancel its "
                            f"referral, not make it {new}")
        return
    if receiver is not None and recorded_by != receiver:
        raise NotAParty(f"'{recorded_by}' is neither the referring nor the receiving "
                        "agency of this referral")
