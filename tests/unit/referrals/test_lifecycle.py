"""The referral state machine, table-driven: every legal move spelled out, every other
refused with both statuses named; the one-to-one FHIR Task mapping; what a single
update may carry."""

from __future__ import annotations

import itertools

import pytest
from fhir.resources.R4B.task import Task

from referrals.errors import IllegalTransition, NotAParty
from referrals.lifecycle import (
    FHIR_TASK_STATUS,
    STATUS_FROM_FHIR,
    Status,
    check_party,
    check_transition,
    update_problems,
)

S = Status
LEGAL = {
    (S.REQUESTED, S.RECEIVED), (S.REQUESTED, S.ACCEPTED), (S.REQUESTED, S.REJECTED),
    (S.REQUESTED, S.CANCELLED),
    (S.RECEIVED, S.RECEIVED), (S.RECEIVED, S.ACCEPTED), (S.RECEIVED, S.REJECTED),
    (S.RECEIVED, S.CANCELLED),
    (S.ACCEPTED, S.ACCEPTED), (S.ACCEPTED, S.IN_PROGRESS), (S.ACCEPTED, S.ON_HOLD),
    (S.ACCEPTED, S.FAILED), (S.ACCEPTED, S.CANCELLED),
    (S.IN_PROGRESS, S.IN_PROGRESS), (S.IN_PROGRESS, S.ON_HOLD),
    (S.IN_PROGRESS, S.COMPLETED), (S.IN_PROGRESS, S.FAILED), (S.IN_PROGRESS, S.CANCELLED),
    (S.ON_HOLD, S.ON_HOLD), (S.ON_HOLD, S.IN_PROGRESS), (S.ON_HOLD, S.FAILED),
    (S.ON_HOLD, S.CANCELLED),
}
ALL_PAIRS = list(itertools.product(Status, Status))


@pytest.mark.parametrize(("current", "new"), ALL_PAIRS,
                         ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_each_transition_is_allowed_or_refused_naming_both_statuses(current, new):
    if (current, new) in LEGAL:
        check_transition(current, new)
        return
    with pytest.raises(IllegalTransition) as refused:
        check_transition(current, new)
    assert f"is {current.value} cannot become {new.value}" in str(refused.value)
    assert (refused.value.current, refused.value.new) == (current.value, new.value)


def test_a_closed_referral_says_it_is_closed():
    with pytest.raises(IllegalTransition, match="none: the referral is closed"):
        check_transition(S.COMPLETED, S.IN_PROGRESS)


# -- FHIR --------------------------------------------------------------------------------

SDOHCC_REFERRAL_TASK_STATUSES = {
    # SDOHCC ValueSet Referral Task Status: FHIR R4 TaskStatus without draft, ready and
    # entered-in-error, which a referral ledger never holds.
    "requested", "received", "accepted", "rejected", "in-progress", "on-hold",
    "completed", "failed", "cancelled",
}


def test_statuses_map_one_to_one_onto_fhir_task_status():
    assert set(FHIR_TASK_STATUS.values()) == SDOHCC_REFERRAL_TASK_STATUSES
    assert len(FHIR_TASK_STATUS) == len(Status)
    assert all(STATUS_FROM_FHIR[s.fhir] is s for s in Status)


@pytest.mark.parametrize("status", list(Status))
def test_each_fhir_code_is_a_valid_r4_task_status(status):
    Task.model_validate({"resourceType": "Task", "status": status.fhir, "intent": "order"})


# -- one update on its own ----------------------------------------------------------------

UPDATES = [
    # status, business status, reason, fields with a problem
    ("RECEIVED", None, None, []),
    ("ACCEPTED", "WAITLISTED", None, []),
    ("ACCEPTED", "ENROLLED", None, ["business_status"]),
    ("IN_PROGRESS", "CONTACT_ATTEMPTED", None, []),
    ("IN_PROGRESS", "ENROLLED", None, []),
    ("IN_PROGRESS", None, "NOT_ELIGIBLE", ["reason"]),
    ("REJECTED", None, None, ["reason"]),
    ("REJECTED", None, "NO_CAPACITY", []),
    ("REJECTED", None, "FAMILY_MOVED", ["reason"]),
    ("FAILED", "UNABLE_TO_REACH", "UNABLE_TO_REACH", []),
    ("FAILED", None, None, ["reason"]),
    ("CANCELLED", None, None, []),
    ("CANCELLED", None, "DUPLICATE", []),
    ("ON_HOLD", "WAITLISTED", "NO_CAPACITY", []),
    ("COMPLETED", "ENROLLED", None, []),
    ("COMPLETED", "CONTACTED", None, ["business_status"]),
    ("REQUESTED", None, None, ["status"]),
    ("LOST", None, None, ["status"]),
    ("IN_PROGRESS", "CALLED", None, ["business_status"]),
    ("REJECTED", None, "BORED", ["reason"]),
]


@pytest.mark.parametrize(("state", "business", "reason", "fields"), UPDATES,
                         ids=[f"{s}/{b}/{r}" for s, b, r, _ in UPDATES])
def test_what_one_update_may_carry(state, business, reason, fields):
    assert [f for f, _ in update_problems(state, business, reason)] == fields


def test_a_missing_decline_reason_lists_the_closed_list():
    ((_, message),) = update_problems("REJECTED", None, None)
    assert message.startswith("a REJECTED referral needs a reason (ALREADY_SERVED, "
                              "INCOMPLETE_REFERRAL, NOT_ELIGIBLE")


PARTIES = [
    # new status, recorded by, receiver known, refused
    (S.ACCEPTED, "hv-nfp", "hv-nfp", False),
    (S.ACCEPTED, "hv-nfp", None, False),
    (S.ACCEPTED, "medicaid", "hv-nfp", True),
    (S.CANCELLED, "cw-hotline", "hv-nfp", False),
    (S.ACCEPTED, "cw-hotline", "hv-nfp", True),
    (S.CANCELLED, "hv-nfp", "hv-nfp", False),
]


@pytest.mark.parametrize(("new", "by", "receiver", "refused"), PARTIES)
def test_who_may_record_a_status(new, by, receiver, refused):
    if refused:
        with pytest.raises(NotAParty):
            check_party(new, by, "cw-hotline", receiver)
    else:
        check_party(new, by, "cw-hotline", receiver)
