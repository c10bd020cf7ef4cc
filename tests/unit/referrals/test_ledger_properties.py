"""Properties of the ledger under replay: the log can repeat records (at-least-once) and
topics can be read in any interleaving, so the ledger must end in the same state
whatever the order, however the records are batched, and however often they repeat."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from referrals.events import LedgerEvent
from referrals.ledger import ReferralLedger
from referrals.store import InMemoryLedgerStore
from referrals.timers import timers_of
from tests.referral_cases import (
    DAY,
    HOUR,
    SIMPLE_POLICY,
    T0,
    alert,
    enrollment,
    referral,
    status,
)

IDS = ("HL-1", "HL-2", "HL-3")
UPDATES = [
    ("RECEIVED", None, None), ("ACCEPTED", None, None), ("ACCEPTED", "WAITLISTED", None),
    ("IN_PROGRESS", "CONTACT_ATTEMPTED", None), ("IN_PROGRESS", "CONTACTED", None),
    ("IN_PROGRESS", "ENROLLED", None), ("ON_HOLD", "WAITLISTED", "NO_CAPACITY"),
    ("REJECTED", None, "NOT_ELIGIBLE"), ("FAILED", "UNABLE_TO_REACH", "UNABLE_TO_REACH"),
    ("COMPLETED", None, None), ("CANCELLED", None, None),
]


@st.composite
def event(draw: st.DrawFn, n: int) -> LedgerEvent:
    rid = draw(st.sampled_from(IDS))
    at = T0 + draw(st.integers(0, 40)) * 6 * HOUR
    kind = draw(st.sampled_from(["referral", "status", "status", "status", "enrollment",
                                 "alert"]))
    if kind == "referral":
        return referral(rid, at=at, event_id=f"r{n}", program=f"p{n % 2}")
    if kind == "enrollment":
        return enrollment(at, rid, referrer=draw(st.sampled_from([None, "cw-hotline"])),
                          by=draw(st.sampled_from(["hv-nfp", "hv-nfp", "medicaid"])),
                          event_id=f"e{n}")
    if kind == "alert":
        return alert(draw(st.sampled_from(["received", "first_contact", "outcome"])),
                     draw(st.sampled_from(["RAISED", "CLEARED"])), rid, at)
    state, business, reason = draw(st.sampled_from(UPDATES))
    by = draw(st.sampled_from(["hv-nfp", "hv-nfp", "hv-nfp", "cw-hotline", "medicaid"]))
    return status(state, at, rid, business=business, reason=reason, by=by,
                  event_id=f"s{n}")


@st.composite
def histories(draw: st.DrawFn) -> list[LedgerEvent]:
    size = draw(st.integers(1, 25))
    return [draw(event(n)) for n in range(size)]


def state(events: list[LedgerEvent], batches: list[int] | None = None):
    """Apply events in batches of the given sizes; the resulting entries, timers and
    waiting enrollments."""
    store = InMemoryLedgerStore()
    ledger = ReferralLedger(store, SIMPLE_POLICY)
    start = 0
    for size in batches or [len(events)]:
        ledger.apply(events[start:start + size])
        start += size
    ledger.apply(events[start:])
    entries = list(store.scan())
    timers = set(store.due(1 << 62, 10_000))
    assert timers == set().union(*(timers_of(e) for e in entries)), \
        "the store's timer index must match the entries"
    pending = sorted(p.event_id for rid in IDS for by in ("hv-nfp", "medicaid")
                     for p in store.pending_for(by, rid))
    return entries, timers, pending


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(histories(), st.randoms(use_true_random=False))
def test_any_order_gives_the_same_ledger(events, rng):
    shuffled = list(events)
    rng.shuffle(shuffled)
    assert state(shuffled) == state(events)


@SETTINGS
@given(histories(), st.lists(st.integers(1, 5), max_size=10))
def test_any_batching_gives_the_same_ledger(events, batches):
    assert state(events, batches) == state(events)


@SETTINGS
@given(histories(), st.randoms(use_true_random=False))
def test_replaying_the_log_changes_nothing(events, rng):
    store = InMemoryLedgerStore()
    ledger = ReferralLedger(store, SIMPLE_POLICY)
    ledger.apply(events)
    before = list(store.scan())
    again = list(events)
    rng.shuffle(again)
    changes = ledger.apply(again)
    assert not changes
    assert list(store.scan()) == before


@SETTINGS
@given(histories())
def test_each_deadline_fires_at_most_once_per_alert(events):
    store = InMemoryLedgerStore()
    ledger = ReferralLedger(store, SIMPLE_POLICY)
    published: list[str] = []
    for event_ in events:
        ledger.apply([event_])
        alerts = ledger.due_alerts(event_.occurred_at + 2 * DAY)
        published += [a.event_id for a in alerts]
        ledger.record_alerts(alerts)
        ledger.apply([event_])  # a duplicate record on the log
    alerts = ledger.due_alerts(1 << 62)
    published += [a.event_id for a in alerts]
    assert len(published) == len(set(published))
