"""The ledger service over the in-memory store: the tick, recording alerts, enrollments
waiting for their referral, and the publish-path check."""

from __future__ import annotations

import pytest

from referrals.errors import (
    IllegalTransition,
    NotAParty,
    OutOfOrderUpdate,
    ReferralError,
    UnknownReferral,
)
from referrals.ledger import ReferralLedger
from referrals.lifecycle import Status
from referrals.store import InMemoryLedgerStore, Position
from tests.referral_cases import (
    DAY,
    DEMO_POLICY,
    HOUR,
    SIMPLE_POLICY,
    T0,
    enrollment,
    key,
    local_text,
    referral,
    status,
)


@pytest.fixture
def ledger() -> ReferralLedger:
    return ReferralLedger(InMemoryLedgerStore(), SIMPLE_POLICY)


def fire(ledger: ReferralLedger, now: int) -> list[tuple[str, str, str]]:
    """One tick: what it would publish, recorded as published."""
    alerts = ledger.due_alerts(now)
    ledger.record_alerts(alerts)
    return [(a.key.referral_id, a.step, a.alert) for a in alerts]


def test_a_referral_nobody_acts_on_raises_each_level_once(ledger):
    ledger.apply([referral()])
    assert fire(ledger, T0 + 23 * HOUR) == []
    assert fire(ledger, T0 + 25 * HOUR) == [("HL-1", "received", "RAISED")]
    assert fire(ledger, T0 + 25 * HOUR) == []
    assert fire(ledger, T0 + 40 * DAY) == [("HL-1", "first_contact", "RAISED"),
                                           ("HL-1", "outcome", "RAISED")]
    assert fire(ledger, T0 + 400 * DAY) == []
    assert ledger.store.timer_count() == 0


def test_a_late_status_clears_the_alert_once(ledger):
    ledger.apply([referral()])
    fire(ledger, T0 + 25 * HOUR)
    ledger.apply([status("RECEIVED", T0 + 26 * HOUR)])
    assert fire(ledger, T0 + 27 * HOUR) == [("HL-1", "received", "CLEARED")]
    assert fire(ledger, T0 + 28 * HOUR) == []


def test_an_alert_read_back_from_the_log_is_not_fired_again(ledger):
    ledger.apply([referral()])
    published = ledger.due_alerts(T0 + 25 * HOUR)
    # The tick published but crashed before recording; the ledger then reads the
    # alert back from events.handoff_overdue.
    ledger.apply([published[0].recorded()])
    assert ledger.due_alerts(T0 + 25 * HOUR) == []


def test_an_alert_not_recorded_is_fired_again_with_the_same_id(ledger):
    ledger.apply([referral()])
    first = ledger.due_alerts(T0 + 25 * HOUR)
    again = ledger.due_alerts(T0 + 26 * HOUR)
    assert [a.event_id for a in first] == [a.event_id for a in again]


def test_a_step_met_in_time_never_fires(ledger):
    ledger.apply([referral(), status("RECEIVED", T0 + HOUR),
                  status("ACCEPTED", T0 + 2 * HOUR),
                  status("IN_PROGRESS", T0 + DAY, business="CONTACTED"),
                  status("IN_PROGRESS", T0 + 2 * DAY, business="ENROLLED")])
    assert fire(ledger, T0 + 400 * DAY) == []


def test_the_tick_reads_only_what_is_due(ledger):
    ledger.apply([referral(f"HL-{n}", at=T0 + n * DAY) for n in range(50)])
    alerts = ledger.due_alerts(T0 + 10 * DAY + HOUR, limit=5)
    # Earliest due first, and no further than the limit.
    assert [(a.key.referral_id, a.step) for a in alerts] == [
        ("HL-0", "received"), ("HL-1", "received"), ("HL-2", "received"),
        ("HL-0", "first_contact"), ("HL-3", "received")]


def test_positions_are_written_with_the_batch(ledger):
    ledger.apply([referral()], [Position("events.referral", 0, 7)])
    ledger.apply([], [Position("events.referral", 0, 3)])
    assert ledger.positions() == {("events.referral", 0): 7}


def test_an_enrollment_without_its_referrer_waits_for_the_referral(ledger):
    ledger.apply([enrollment(T0 + DAY)])
    assert ledger.store.pending_count() == 1 and ledger.entry(key()) is None
    ledger.apply([referral()])
    entry = ledger.entry(key())
    assert entry is not None and entry.steps["enrolled"] == T0 + DAY
    assert ledger.store.pending_count() == 0


def test_an_enrollment_without_its_referrer_is_found_by_its_receiver(ledger):
    ledger.apply([referral(), referral(referrer="county-general", receiver="medicaid")])
    ledger.apply([enrollment(T0 + DAY)])
    assert ledger.entry(key()).status is Status.IN_PROGRESS  # type: ignore[union-attr]
    assert ledger.entry(key(referrer="county-general")).status is Status.REQUESTED  # type: ignore[union-attr]


def test_the_worked_example_of_the_docs():
    ledger = ReferralLedger(InMemoryLedgerStore(), DEMO_POLICY)
    ledger.apply([referral("HL-2026-118204", at=T0)])
    due = {d.step: local_text(d.due_at)
           for d in ledger.entry(key("HL-2026-118204")).deadlines}  # type: ignore[union-attr]
    assert due == {"received": "2026-11-11 00:00", "first_contact": "2026-11-13 00:00",
                   "outcome": "2026-12-10 00:00"}


# -- the publish path ---------------------------------------------------------------------


def test_an_illegal_update_is_refused_naming_both_statuses(ledger):
    ledger.apply([referral(), status("ACCEPTED", T0 + HOUR), status(
        "IN_PROGRESS", T0 + 2 * HOUR, business="ENROLLED")])
    with pytest.raises(IllegalTransition, match="is IN_PROGRESS cannot become RECEIVED"):
        ledger.check_update(status("RECEIVED", T0 + 3 * HOUR))


def test_a_closed_referral_refuses_every_update(ledger):
    ledger.apply([referral(), status("REJECTED", T0 + HOUR, reason="NOT_ELIGIBLE")])
    with pytest.raises(IllegalTransition, match="the referral is closed"):
        ledger.check_update(status("ACCEPTED", T0 + 2 * HOUR))


def test_an_update_dated_before_one_it_would_contradict_is_refused(ledger):
    ledger.apply([referral(), status("ACCEPTED", T0 + HOUR),
                  status("IN_PROGRESS", T0 + 3 * HOUR, business="CONTACTED")])
    with pytest.raises(OutOfOrderUpdate, match="CANCELLED update is dated before a "
                                               "IN_PROGRESS"):
        ledger.check_update(status("CANCELLED", T0 + 2 * HOUR))


def test_an_update_by_another_agency_is_refused(ledger):
    ledger.apply([referral()])
    with pytest.raises(NotAParty):
        ledger.check_update(status("ACCEPTED", T0 + HOUR, by="medicaid"))
    with pytest.raises(NotAParty, match="may only cancel"):
        ledger.check_update(status("ACCEPTED", T0 + HOUR, by="cw-hotline"))


def test_an_update_that_makes_no_sense_on_its_own_is_refused(ledger):
    with pytest.raises(ReferralError, match="reason: a REJECTED referral needs a reason"):
        ledger.check_update(status("REJECTED", T0))


def test_a_status_for_an_unknown_referral_is_checked_as_requested(ledger):
    ledger.check_update(status("ACCEPTED", T0))
    with pytest.raises(IllegalTransition, match="REQUESTED cannot become IN_PROGRESS"):
        ledger.check_update(status("IN_PROGRESS", T0, business="CONTACTED"))


def test_a_re_sent_update_is_not_refused(ledger):
    update = status("ACCEPTED", T0 + HOUR)
    ledger.apply([referral(), update])
    ledger.check_update(update)


# -- the updates of one request ------------------------------------------------------------


def test_the_updates_of_one_request_are_checked_in_order(ledger):
    ledger.apply([referral()])
    ledger.check_updates([status("ACCEPTED", T0 + HOUR), status("IN_PROGRESS", T0 + 2 * HOUR)])
    with pytest.raises(IllegalTransition) as refused:
        ledger.check_updates([status("ACCEPTED", T0 + HOUR),
                              status("RECEIVED", T0 + 2 * HOUR)])
    assert (refused.value.current, refused.value.new) == ("ACCEPTED", "RECEIVED")


def test_every_refusal_of_a_request_is_named_by_its_place(ledger):
    ledger.apply([referral()])
    found = ledger.refusals([
        status("ACCEPTED", T0 + HOUR),
        status("RECEIVED", T0 + 2 * HOUR),            # after ACCEPTED: refused
        status("IN_PROGRESS", T0 + 3 * HOUR),         # still fits (the refusal is left out)
        status("ACCEPTED", T0 + HOUR, referral_id="HL-404"),
    ])
    assert [(i, type(e).__name__) for i, e in found] == [(1, "IllegalTransition"),
                                                         (3, "UnknownReferral")]
    assert "HL-404" not in str(found[1][1])


def test_a_status_for_a_referral_not_on_record_is_refused(ledger):
    with pytest.raises(UnknownReferral):
        ledger.check_updates([status("ACCEPTED", T0 + HOUR)])
    # A status seen before its referral does not make the referral known.
    ledger.apply([status("ACCEPTED", T0 + HOUR, event_id="early")])
    with pytest.raises(UnknownReferral):
        ledger.check_updates([status("IN_PROGRESS", T0 + 2 * HOUR)])
