"""The ledger-store contract: what every adapter of `referrals.store.LedgerStore`
guarantees (see its docstring). Written only against the port; referral_store_cases.py
runs it per adapter."""

from __future__ import annotations

import pytest

from referrals.apply import apply
from referrals.entry import ReferralEntry
from referrals.store import LedgerStore, LedgerWrite, Position
from referrals.timers import Timer, TimerChanges
from tests.contract import referral_store_cases as cases
from tests.contract.referral_store_cases import LedgerStoreFactory
from tests.referral_cases import (
    DAY,
    SIMPLE_POLICY,
    T0,
    enrollment,
    key,
    referral,
    status,
)

ledger_store_factory = cases.ledger_store_factory
ledger_store = cases.ledger_store


def entry(referral_id: str = "HL-1", *events) -> ReferralEntry:
    built, _ = apply(None, referral(referral_id), SIMPLE_POLICY)
    for event in events:
        built, _ = apply(built, event, SIMPLE_POLICY)
    return built


def timer(referral_id: str, due: int, step: str = "received", action: str = "RAISE"
          ) -> Timer:
    return Timer(due, key(referral_id), step, action)  # type: ignore[arg-type]


# -- entries ------------------------------------------------------------------------------


def test_an_entry_written_is_read_back_equal(ledger_store: LedgerStore):
    written = entry("HL-1", status("ACCEPTED", T0 + 1, "HL-1"),
                    status("IN_PROGRESS", T0 + 2, "HL-1", business="CONTACTED"))
    ledger_store.write(LedgerWrite(entries=(written,)))
    assert ledger_store.get([key("HL-1"), key("HL-9")]) == {key("HL-1"): written}
    assert ledger_store.entry_count() == 1


def test_writing_an_entry_again_replaces_it(ledger_store: LedgerStore):
    ledger_store.write(LedgerWrite(entries=(entry("HL-1"),)))
    newer = entry("HL-1", status("ACCEPTED", T0 + 1, "HL-1"))
    ledger_store.write(LedgerWrite(entries=(newer,)))
    assert ledger_store.get([key("HL-1")])[key("HL-1")] == newer
    assert ledger_store.entry_count() == 1


def test_scan_returns_every_entry_in_key_order(ledger_store: LedgerStore):
    ids = [f"HL-{n:04d}" for n in range(2500)]
    ledger_store.write(LedgerWrite(entries=tuple(entry(i) for i in reversed(ids))))
    assert [e.key.referral_id for e in ledger_store.scan()] == ids


def test_keys_for_finds_a_referral_by_receiver(ledger_store: LedgerStore):
    ledger_store.write(LedgerWrite(entries=(entry("HL-1"), entry("HL-2"))))
    assert ledger_store.keys_for("hv-nfp", "HL-1") == [key("HL-1")]
    assert ledger_store.keys_for("medicaid", "HL-1") == []


def test_an_entry_without_its_referral_is_not_found_by_receiver(ledger_store: LedgerStore):
    only_status, _ = apply(None, status("ACCEPTED", T0, "HL-3"), SIMPLE_POLICY)
    ledger_store.write(LedgerWrite(entries=(only_status,)))
    assert ledger_store.keys_for("hv-nfp", "HL-3") == []


# -- timers -------------------------------------------------------------------------------


def test_due_returns_only_due_timers_earliest_first(ledger_store: LedgerStore):
    timers = tuple(timer(f"HL-{n}", T0 + n * DAY) for n in range(10))
    ledger_store.write(LedgerWrite(timers=TimerChanges(schedule=timers[::-1])))
    assert ledger_store.due(T0 + 3 * DAY, 100) == list(timers[:4])
    assert ledger_store.due(T0 + 9 * DAY, 2) == list(timers[:2])
    assert ledger_store.due(T0 - 1, 100) == []
    assert ledger_store.next_due_at() == T0
    assert ledger_store.timer_count() == 10


def test_a_due_timer_stays_until_unscheduled(ledger_store: LedgerStore):
    due = timer("HL-1", T0)
    ledger_store.write(LedgerWrite(timers=TimerChanges(schedule=(due,))))
    assert ledger_store.due(T0, 10) == [due]
    assert ledger_store.due(T0, 10) == [due]
    ledger_store.write(LedgerWrite(timers=TimerChanges(unschedule=(due,))))
    assert ledger_store.due(T0, 10) == [] and ledger_store.timer_count() == 0
    assert ledger_store.next_due_at() is None


def test_scheduling_a_timer_again_moves_it(ledger_store: LedgerStore):
    ledger_store.write(LedgerWrite(timers=TimerChanges(schedule=(timer("HL-1", T0),))))
    moved = timer("HL-1", T0 + DAY)
    ledger_store.write(LedgerWrite(timers=TimerChanges(schedule=(moved,))))
    assert ledger_store.due(T0, 10) == []
    assert ledger_store.due(T0 + DAY, 10) == [moved]
    assert ledger_store.timer_count() == 1


def test_timers_of_one_referral_are_told_apart_by_step_and_action(ledger_store: LedgerStore):
    timers = (timer("HL-1", T0, "received", "RAISE"), timer("HL-1", T0, "received", "CLEAR"),
              timer("HL-1", T0, "outcome", "RAISE"))
    ledger_store.write(LedgerWrite(timers=TimerChanges(schedule=timers)))
    assert sorted(ledger_store.due(T0, 10)) == sorted(timers)
    ledger_store.write(LedgerWrite(timers=TimerChanges(unschedule=timers[1:2])))
    assert sorted(ledger_store.due(T0, 10)) == sorted((timers[0], timers[2]))


def test_unscheduling_a_missing_timer_is_harmless(ledger_store: LedgerStore):
    ledger_store.write(LedgerWrite(timers=TimerChanges(unschedule=(timer("HL-1", T0),))))
    assert ledger_store.timer_count() == 0


# -- pending enrollments and positions ----------------------------------------------------


def test_waiting_enrollments_are_kept_until_resolved(ledger_store: LedgerStore):
    first, second = enrollment(T0, "HL-1", event_id="e1"), enrollment(T0, "HL-1",
                                                                      event_id="e2")
    ledger_store.write(LedgerWrite(pending_added=(first, second)))
    ledger_store.write(LedgerWrite(pending_added=(first,)))
    assert ledger_store.pending_for("hv-nfp", "HL-1") == [first, second]
    assert ledger_store.pending_for("medicaid", "HL-1") == []
    ledger_store.write(LedgerWrite(pending_resolved=("e1",)))
    assert ledger_store.pending_for("hv-nfp", "HL-1") == [second]
    assert ledger_store.pending_count() == 1


def test_positions_only_move_forward(ledger_store: LedgerStore):
    ledger_store.write(LedgerWrite(positions=(Position("events.referral", 0, 10),
                                              Position("events.referral", 1, 4))))
    ledger_store.write(LedgerWrite(positions=(Position("events.referral", 0, 7),
                                              Position("events.referral_status", 0, 2))))
    assert ledger_store.positions() == {("events.referral", 0): 10,
                                        ("events.referral", 1): 4,
                                        ("events.referral_status", 0): 2}


# -- durability ---------------------------------------------------------------------------


def test_everything_written_survives_a_reopen(ledger_store_factory: LedgerStoreFactory):
    if not ledger_store_factory.durable:
        pytest.skip(f"{ledger_store_factory.name} keeps nothing across a reopen")
    store = ledger_store_factory()
    written = entry("HL-1", status("ACCEPTED", T0 + 1, "HL-1"))
    due = timer("HL-1", T0)
    waiting = enrollment(T0, "HL-2", event_id="e1")
    store.write(LedgerWrite(entries=(written,), timers=TimerChanges(schedule=(due,)),
                            pending_added=(waiting,),
                            positions=(Position("events.referral", 0, 5),)))
    store.close()
    again = ledger_store_factory()
    assert again.get([key("HL-1")]) == {key("HL-1"): written}
    assert again.due(T0, 10) == [due]
    assert again.pending_for("hv-nfp", "HL-2") == [waiting]
    assert again.positions() == {("events.referral", 0): 5}
