"""`apply` on one referral: steps and deadlines, statuses that arrive before their
referral, enrollments that count as enrolled, updates that do not fit, idempotency."""

from __future__ import annotations

from referrals.apply import apply
from referrals.entry import ReferralEntry
from referrals.lifecycle import Status
from referrals.terms import ReferralPolicy
from referrals.timers import timers_of
from tests.referral_cases import (
    DAY,
    HOUR,
    SIMPLE_POLICY,
    T0,
    alert,
    enrollment,
    key,
    referral,
    status,
)


def run(*events, policy=SIMPLE_POLICY) -> ReferralEntry:
    entry = None
    for event in events:
        entry, _ = apply(entry, event, policy, key())
    assert entry is not None
    return entry


def test_a_referral_gets_the_deadlines_of_its_terms():
    entry = run(referral(at=T0 - HOUR, sent_at=T0))
    assert entry.terms_id == "simple"
    assert entry.status is Status.REQUESTED
    # Counted from when the referral reached the broker, not when it was written.
    assert [(d.step, d.due_at - T0) for d in entry.deadlines] == [
        ("received", 24 * HOUR),
        ("first_contact", 4 * DAY - (T0 % DAY)),
        ("outcome", 31 * DAY - (T0 % DAY)),
    ]
    assert {(t.step, t.action) for t in timers_of(entry)} == {
        ("received", "RAISE"), ("first_contact", "RAISE"), ("outcome", "RAISE")}


def test_a_referral_under_no_terms_is_tracked_without_deadlines():
    entry = run(referral(), policy=ReferralPolicy())
    assert entry.terms_id is None and entry.deadlines == () and timers_of(entry) == set()


def test_steps_are_reached_in_order_and_settle_their_deadlines():
    entry = run(referral(),
                status("RECEIVED", T0 + HOUR),
                status("ACCEPTED", T0 + 2 * HOUR),
                status("IN_PROGRESS", T0 + DAY, business="CONTACT_ATTEMPTED"),
                status("IN_PROGRESS", T0 + 2 * DAY, business="ENROLLED"))
    assert entry.status is Status.IN_PROGRESS
    assert dict(entry.steps) == {"received": T0 + HOUR, "accepted": T0 + 2 * HOUR,
                                 "first_contact": T0 + DAY, "enrolled": T0 + 2 * DAY,
                                 "outcome": T0 + 2 * DAY}
    assert timers_of(entry) == set()


def test_a_status_that_arrives_before_its_referral_is_kept():
    early = run(status("ACCEPTED", T0 + HOUR))
    assert early.referral is None and early.status is Status.ACCEPTED
    assert early.deadlines == ()
    entry, changes = apply(early, referral(), SIMPLE_POLICY)
    assert entry.status is Status.ACCEPTED and entry.steps["accepted"] == T0 + HOUR
    # The referral brings the deadlines; the received step is already met.
    assert {(t.step, t.action) for t in changes.schedule} == {
        ("first_contact", "RAISE"), ("outcome", "RAISE")}


def test_an_enrollment_naming_the_referral_counts_as_enrolled():
    entry = run(referral(), status("ACCEPTED", T0 + HOUR),
                enrollment(T0 + 3 * DAY, referrer="cw-hotline"))
    assert entry.status is Status.IN_PROGRESS
    assert entry.business_status is not None and entry.business_status.value == "ENROLLED"
    assert entry.steps["first_contact"] == entry.steps["enrolled"] == T0 + 3 * DAY
    assert entry.steps["accepted"] == T0 + HOUR


def test_an_enrollment_implies_the_steps_nobody_reported():
    entry = run(referral(), enrollment(T0 + DAY))
    assert set(entry.steps) == {"received", "accepted", "first_contact", "enrolled",
                                "outcome"}


def test_an_illegal_update_is_kept_but_not_applied():
    entry = run(referral(), status("ACCEPTED", T0 + HOUR, event_id="a"),
                status("RECEIVED", T0 + 2 * HOUR, event_id="late-received"))
    assert entry.status is Status.ACCEPTED
    assert [(i.event_id, i.current, i.kind) for i in entry.ignored] == [
        ("late-received", Status.ACCEPTED, "transition")]
    assert entry.has_update("late-received")


def test_the_referrer_may_cancel_but_not_accept():
    entry = run(referral(), status("ACCEPTED", T0, by="cw-hotline", event_id="x"),
                status("CANCELLED", T0 + HOUR, by="cw-hotline", reason="FAMILY_MOVED"))
    assert entry.status is Status.CANCELLED
    assert [i.kind for i in entry.ignored] == ["party"]
    # Cancelled by the referrer before the receiver did anything: never received.
    assert "received" not in entry.steps and entry.settled_at("received") == T0 + HOUR


def test_a_status_from_another_agency_is_not_applied():
    entry = run(referral(), status("ACCEPTED", T0, by="medicaid"))
    assert entry.status is Status.REQUESTED and entry.ignored[0].kind == "party"


def test_the_first_receiver_to_answer_is_the_receiver_when_the_referral_named_none():
    entry = run(referral(receiver=None), status("RECEIVED", T0, by="b3"),
                status("ACCEPTED", T0 + 1, by="hv-nfp"), policy=ReferralPolicy())
    assert entry.receiver == "b3" and entry.status is Status.RECEIVED


def test_the_same_event_twice_changes_nothing():
    first = referral()
    update = status("ACCEPTED", T0 + HOUR)
    entry = run(first, update)
    again, changes = apply(entry, update, SIMPLE_POLICY)
    assert again is entry and not changes
    again, changes = apply(entry, first, SIMPLE_POLICY)
    assert again is entry and not changes


def test_of_two_referral_events_the_earliest_counts_whichever_comes_first():
    a = referral(at=T0, event_id="a", program="first")
    b = referral(at=T0 + DAY, event_id="b", program="second")
    assert run(a, b) == run(b, a)
    assert run(b, a).referral.event_id == "a"  # type: ignore[union-attr]


def test_an_overdue_step_owes_a_clear_once_it_happens():
    entry = run(referral(), alert("received", "RAISED"))
    assert {(t.step, t.action) for t in timers_of(entry)} == {
        ("first_contact", "RAISE"), ("outcome", "RAISE")}
    late = run(referral(), alert("received", "RAISED"), status("RECEIVED", T0 + 2 * DAY))
    clear = [t for t in timers_of(late) if t.action == "CLEAR"]
    assert [(t.step, t.due_at) for t in clear] == [("received", T0 + 2 * DAY)]
    done = run(referral(), alert("received", "RAISED"), status("RECEIVED", T0 + 2 * DAY),
               alert("received", "CLEARED"))
    assert not [t for t in timers_of(done) if t.step == "received"]


def test_a_closed_referral_settles_the_steps_it_never_reached():
    entry = run(referral(), status("REJECTED", T0 + HOUR, reason="NO_CAPACITY"))
    assert entry.settled_at("first_contact") == T0 + HOUR
    assert entry.settled_at("received") == T0 + HOUR
    assert timers_of(entry) == set()
