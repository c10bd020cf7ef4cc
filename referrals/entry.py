"""One referral in the ledger: the facts it was built from, and what they add up to.

An entry keeps its sources (the referral, every status update and enrollment, the overdue
alerts recorded, the deadlines its terms set) and derives the rest: current status, the
time each step was first reached, who the receiver is, which updates did not fit.

The derivation depends only on the *set* of sources, never on the order they arrived:
updates are replayed sorted by when they happened (then by how far along the life they
are, then by event id). That is what makes the ledger order-tolerant across topics (a
status read before its referral, an enrollment before the acceptance it implies) and
idempotent (the same event twice is the same set).

An update that does not fit the life at its place in that order (a transition the state
machine has not got, a status recorded by an agency that is not a party) is kept but not
applied, and listed in `ignored`. The publish path refuses such updates before they reach
the log; `ignored` catches what slips through a race between two publishers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from policy.referral_terms import STEPS, Step
from referrals.events import Alert, ReferralKey
from referrals.lifecycle import (
    BUSINESS_STATUSES,
    CONTACT_REASONS,
    CONTACT_STATUSES,
    REASON_REQUIRED,
    REASONS,
    TERMINAL,
    TRANSITIONS,
    BusinessStatus,
    Reason,
    Status,
)

_RANK = {Status.REQUESTED: 0, Status.RECEIVED: 1, Status.ACCEPTED: 2, Status.REJECTED: 2,
         Status.IN_PROGRESS: 3, Status.ON_HOLD: 3, Status.COMPLETED: 5, Status.FAILED: 5,
         Status.CANCELLED: 5}
_ENROLLMENT_RANK = 4
_OPEN_FOR_ENROLLMENT = frozenset({Status.REQUESTED, Status.RECEIVED, Status.ACCEPTED,
                                  Status.IN_PROGRESS, Status.ON_HOLD})
_ACCEPTED_OR_LATER = frozenset({Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD,
                                Status.COMPLETED})


@dataclass(frozen=True, slots=True)
class Referral:
    """The facts of the referral event."""

    event_id: str
    subject_id: str
    receiver: str | None
    """The receiving agency: the referral's `referred_to_agency`, else its terms'."""
    program: str | None
    service: str
    urgency: str
    referred_at: int
    sent_at: int


@dataclass(frozen=True, slots=True)
class Update:
    """A status update, or (with `status` None) an enrollment answering the referral."""

    event_id: str
    occurred_at: int
    recorded_by: str
    status: Status | None
    business_status: BusinessStatus | None = None
    reason: Reason | None = None
    program: str | None = None
    subject_id: str | None = None

    @property
    def is_enrollment(self) -> bool:
        return self.status is None

    def order(self) -> tuple[int, int, str]:
        rank = _ENROLLMENT_RANK if self.status is None else _RANK[self.status]
        return (self.occurred_at, rank, self.event_id)


@dataclass(frozen=True, slots=True)
class Deadline:
    """When one step is due, as the referral's terms set it when the referral arrived."""

    step: Step
    due_at: int
    within: str
    """The service level as written: `3 business days`."""


@dataclass(frozen=True, slots=True)
class Ignored:
    """An update that did not fit: which status the referral was in, and why."""

    event_id: str
    current: Status
    status: Status
    kind: Literal["party", "transition", "content"]
    message: str


@dataclass(frozen=True)
class ReferralEntry:
    """A referral as the ledger holds it. Build with `ReferralEntry.build`."""

    key: ReferralKey
    referral: Referral | None
    """None while only updates have arrived (the referral is on another topic)."""
    updates: tuple[Update, ...]
    """Sorted by `Update.order`."""
    deadlines: tuple[Deadline, ...]
    terms_id: str | None
    alerts: frozenset[tuple[Step, Alert]]
    # -- derived --------------------------------------------------------------------------
    status: Status = Status.REQUESTED
    business_status: BusinessStatus | None = None
    reason: Reason | None = None
    receiver: str | None = None
    program: str | None = None
    subject_id: str | None = None
    steps: Mapping[Step, int] = field(default_factory=lambda: MappingProxyType({}))
    """When each step was first reached."""
    closed_at: int | None = None
    """When the referral reached a closed status (rejected, completed, failed, cancelled)."""
    ignored: tuple[Ignored, ...] = ()

    @classmethod
    def empty(cls, key: ReferralKey) -> ReferralEntry:
        return cls.build(key, None, (), (), None, frozenset())

    @classmethod
    def build(cls, key: ReferralKey, referral: Referral | None, updates: Iterable[Update],
              deadlines: Iterable[Deadline], terms_id: str | None,
              alerts: frozenset[tuple[Step, Alert]]) -> ReferralEntry:
        ordered = tuple(sorted(updates, key=Update.order))
        derived = _Replay(key.referrer, referral)
        for update in ordered:
            derived.take(update)
        return cls(key, referral, ordered, tuple(deadlines), terms_id, alerts,
                   derived.status, derived.business_status, derived.reason,
                   derived.receiver, derived.program, derived.subject_id,
                   MappingProxyType(dict(derived.steps)), derived.closed_at,
                   tuple(derived.ignored))

    def has_update(self, event_id: str) -> bool:
        return any(u.event_id == event_id for u in self.updates)

    @property
    def match_receiver(self) -> str | None:
        """The receiver an enrollment that names no referrer is matched by: only once the
        referral itself has arrived, so the match does not depend on arrival order."""
        return self.receiver if self.referral is not None else None

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    def settled_at(self, step: Step) -> int | None:
        """When a deadline for `step` stopped being owed: when the step was reached, or
        when the referral closed without reaching it."""
        reached = self.steps.get(step)
        if reached is not None and (self.closed_at is None or reached <= self.closed_at):
            return reached
        return self.closed_at


class _Replay:
    """Walks the sorted updates through the state machine."""

    def __init__(self, referrer: str, referral: Referral | None) -> None:
        self.referrer = referrer
        self.status = Status.REQUESTED
        self.business_status: BusinessStatus | None = None
        self.reason: Reason | None = None
        self.receiver = referral.receiver if referral is not None else None
        self.program = referral.program if referral is not None else None
        self.subject_id = referral.subject_id if referral is not None else None
        self.steps: dict[Step, int] = {}
        self.closed_at: int | None = None
        self.ignored: list[Ignored] = []

    def _reach(self, step: Step, at: int) -> None:
        self.steps.setdefault(step, at)

    def take(self, update: Update) -> None:
        if self.subject_id is None:
            self.subject_id = update.subject_id
        if update.status is None:
            self._enrollment(update)
            return
        new = update.status
        misfit = self._misfit(update, new)
        if misfit is not None:
            self.ignored.append(Ignored(update.event_id, self.status, new, *misfit))
            return
        if update.recorded_by != self.referrer and self.receiver is None:
            self.receiver = update.recorded_by
        self.status, self.business_status, self.reason = new, update.business_status, \
            update.reason
        self.program = update.program or self.program
        at = update.occurred_at
        if update.recorded_by != self.referrer:
            self._reach("received", at)
        if new in _ACCEPTED_OR_LATER:
            self._reach("accepted", at)
        if update.business_status in CONTACT_STATUSES or update.reason in CONTACT_REASONS:
            self._reach("first_contact", at)
        if update.business_status is BusinessStatus.ENROLLED:
            self._reach("enrolled", at)
            self._reach("outcome", at)
        if new in TERMINAL:
            self.closed_at = at
            self._reach("outcome", at)

    def _misfit(self, update: Update, new: Status
                ) -> tuple[Literal["party", "transition", "content"], str] | None:
        if update.recorded_by == self.referrer and new is not Status.CANCELLED:
            return "party", f"the referring agency may only cancel, not make it {new}"
        if (update.recorded_by != self.referrer and self.receiver is not None
                and update.recorded_by != self.receiver):
            return "party", "recorded by an agency that is not the receiver"
        if new not in TRANSITIONS[self.status]:
            return "transition", f"a referral that is {self.status} cannot become {new}"
        if update.business_status not in BUSINESS_STATUSES[new]:
            return "content", f"a {new} referral cannot be {update.business_status}"
        if update.reason is None and new in REASON_REQUIRED:
            return "content", f"a {new} referral needs a reason"
        if update.reason is not None and update.reason not in REASONS.get(new, ()):
            return "content", f"{update.reason} is not a reason for a {new} referral"
        return None

    def _enrollment(self, update: Update) -> None:
        at = update.occurred_at
        if self.receiver is None:
            self.receiver = update.recorded_by
        for step in STEPS:
            self._reach(step, at)
        self.program = update.program or self.program
        if self.status in _OPEN_FOR_ENROLLMENT:
            self.status, self.business_status, self.reason = (Status.IN_PROGRESS,
                                                              BusinessStatus.ENROLLED, None)
