"""A referral status as an SDOHCC Task, for webhook subscribers that ask for FHIR.

The input is the `referral_status` record *as the subscriber may see it* (after the
feedback agreement and the rule packs): a field withheld is None, and the Task then says
so with a data-absent-reason extension (`masked`) where the SDOHCC profile requires the
element (`for`, `focus`), and leaves optional elements out.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from referrals.events import millis
from referrals.fhir_codes import (
    AGENCY_SYSTEM,
    BUSINESS_DISPLAY,
    BUSINESS_STATUS_SYSTEM,
    DATA_ABSENT_REASON,
    REASON_DISPLAY,
    REASON_SYSTEM,
    REFERRAL_SYSTEM,
    SUBJECT_SYSTEM,
    TASK_CODE_SYSTEM,
    TASK_PROFILE,
    code_of,
)
from referrals.lifecycle import BusinessStatus, Reason, Status

_TASK_IDS = uuid.UUID("c7a4e2d9-1b3f-4e6a-9d58-0f2b7c1e6a94")
_MASKED = {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "masked"}]}


def task_id(referrer: str, referral_id: str) -> str:
    """One Task per referral: every status of it updates the same Task id."""
    return str(uuid.uuid5(_TASK_IDS, f"{referrer}\x1f{referral_id}"))


def task_from_status(record: Mapping[str, Any], *, receiver: str,
                     referred_at_ms: int | None = None) -> dict[str, Any]:
    """An SDOHCC Task For Referral Management for one (filtered) status record."""
    status = Status(str(record["status"]))
    referrer = record.get("referrer")
    referral_id = record.get("referral_id")
    task: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"profile": [TASK_PROFILE]},
        "status": status.fhir,
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": "fulfill",
                             "display": "Fulfill the focal request"}]},
    }
    if referrer and referral_id:
        task["id"] = task_id(str(referrer), str(referral_id))
        reference = {"system": f"{REFERRAL_SYSTEM}/{referrer}", "value": str(referral_id)}
        task["identifier"] = [reference]
        task["focus"] = {"type": "ServiceRequest", "identifier": reference}
    else:
        task["focus"] = _MASKED
    subject = record.get("subject_id")
    task["for"] = ({"type": "Patient", "identifier": {"system": SUBJECT_SYSTEM,
                                                      "value": str(subject)}}
                   if subject else _MASKED)
    business = record.get("business_status")
    if business:
        symbol = BusinessStatus(str(business))
        task["businessStatus"] = _concept(BUSINESS_STATUS_SYSTEM, symbol.value,
                                          BUSINESS_DISPLAY[symbol])
    reason = record.get("reason")
    if reason:
        cause = Reason(str(reason))
        task["statusReason"] = _concept(REASON_SYSTEM, cause.value, REASON_DISPLAY[cause])
    if record.get("occurred_at") is not None:
        task["lastModified"] = _iso(millis(record["occurred_at"], "occurred_at"))
    if referred_at_ms is not None:
        task["authoredOn"] = _iso(referred_at_ms)
    task["requester"] = (_agency(str(referrer)) if referrer else _MASKED)
    task["owner"] = _agency(receiver)
    return task


def _concept(system: str, symbol: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code_of(symbol), "display": display}],
            "text": display}


def _agency(agency: str) -> dict[str, Any]:
    return {"type": "Organization", "identifier": {"system": AGENCY_SYSTEM, "value": agency}}


def _iso(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
