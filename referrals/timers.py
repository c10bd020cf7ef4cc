"""Timers: the work an entry's deadlines leave for the tick.

A deadline owes one of two things at a time:

- **RAISE**, due at the deadline, while no alert was raised and the step has not
  happened by then (not yet, or only after the deadline): the tick publishes
  `handoff_overdue` (alert RAISED);
- **CLEAR**, due when the late step happened, once an alert was raised and the step has
  since happened (or the referral closed without it): the tick publishes the CLEARED
  alert.

A timer disappears when the alert it owes is recorded (the tick records what it
published; the ledger also reads `handoff_overdue` back from the log). Timers are a pure
function of the entry, so `apply` returns the difference between the entry's timers
before and after as the changes a store makes to its index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from policy.referral_terms import Step
from referrals.entry import Deadline, ReferralEntry
from referrals.events import ReferralKey

Action = Literal["RAISE", "CLEAR"]


@dataclass(frozen=True, slots=True, order=True)
class Timer:
    due_at: int
    key: ReferralKey
    step: Step
    action: Action

    @property
    def identity(self) -> tuple[ReferralKey, Step, Action]:
        return (self.key, self.step, self.action)


@dataclass(frozen=True, slots=True)
class TimerChanges:
    """What an index must do: add `schedule`, remove `unschedule` (by identity)."""

    schedule: tuple[Timer, ...] = ()
    unschedule: tuple[Timer, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.schedule or self.unschedule)


def timers_of(entry: ReferralEntry) -> frozenset[Timer]:
    found: set[Timer] = set()
    for deadline in entry.deadlines:
        timer = _owed(entry, deadline)
        if timer is not None:
            found.add(timer)
    return frozenset(found)


def _owed(entry: ReferralEntry, deadline: Deadline) -> Timer | None:
    settled = entry.settled_at(deadline.step)
    raised = (deadline.step, "RAISED") in entry.alerts
    cleared = (deadline.step, "CLEARED") in entry.alerts
    if not raised:
        # A missed deadline is raised even when the late step is already known (the tick
        # did not run in between, say the broker was down): every missed deadline gives
        # one RAISED and one CLEARED, however the ticks fell.
        if settled is None or settled >= deadline.due_at:
            return Timer(deadline.due_at, entry.key, deadline.step, "RAISE")
        return None
    if settled is not None and not cleared:
        return Timer(settled, entry.key, deadline.step, "CLEAR")
    return None


def diff(before: ReferralEntry | None, after: ReferralEntry) -> TimerChanges:
    old = timers_of(before) if before is not None else frozenset()
    new = timers_of(after)
    return TimerChanges(tuple(sorted(new - old)), tuple(sorted(old - new)))
