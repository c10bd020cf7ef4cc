"""Closed-loop referrals: a referral's life, the ledger, service-level timers, the funnel.

Pure: no I/O, nothing of `broker/` or `connectors/`. The broker wires it in (a worker that
feeds the ledger from the log and ticks its timers, the publish-path check, the return
path through policy, the report endpoint); see docs/referrals.md.

- `lifecycle`: statuses (FHIR Task), business statuses, reasons, the state machine;
- `events`: log records as ledger events; `entry`: one referral as the ledger holds it;
- `apply`: `apply(entry, event, policy) -> (entry, timer changes)`;
- `terms`, `calendar`: referral terms compiled from the bundle, deadlines;
- `timers`, `alerts`: what the tick owes and publishes as `handoff_overdue`;
- `store`: the `LedgerStore` port and its in-memory adapter; `ledger`: the service;
- `report`, `suppression`, `report_render`: the funnel for evaluators;
- `fhir_in`, `fhir_out`: SDOHCC ServiceRequest and Task to events and back.
"""

from referrals.alerts import OverdueAlert, alert_event_id
from referrals.apply import apply
from referrals.entry import Deadline, ReferralEntry
from referrals.errors import (
    IllegalTransition,
    LedgerStoreError,
    NotAParty,
    OutOfOrderUpdate,
    ReferralError,
    ReferralRecordError,
    UnknownReferral,
)
from referrals.events import LedgerEvent, ReferralKey, ledger_event
from referrals.ledger import ReferralLedger
from referrals.lifecycle import BusinessStatus, Reason, Status
from referrals.store import InMemoryLedgerStore, LedgerStore, LedgerWrite, Position, TimerIndex
from referrals.terms import ReferralPolicy
from referrals.timers import Timer, TimerChanges

__all__ = [
    "BusinessStatus", "Deadline", "IllegalTransition", "InMemoryLedgerStore",
    "LedgerEvent", "LedgerStore", "LedgerStoreError", "LedgerWrite", "NotAParty",
    "OutOfOrderUpdate", "OverdueAlert", "Position", "Reason", "ReferralEntry",
    "ReferralError", "ReferralKey", "ReferralLedger", "ReferralPolicy",
    "ReferralRecordError", "Status", "Timer", "TimerChanges", "TimerIndex", "UnknownReferral",
    "alert_event_id", "apply", "ledger_event",
]
