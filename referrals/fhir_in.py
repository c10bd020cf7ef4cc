"""SDOH Clinical Care referrals in, as Handoff events: ServiceRequest + Task, Task updates.

The Gravity Project's SDOH Clinical Care guide sends a referral as an SDOHCC
`ServiceRequest` (what is asked for, for whom) and an SDOHCC `Task` for referral
management (who asks whom: `requester`, `owner`; `focus` is the ServiceRequest), and
tracks it by updating the Task. Here (pure functions on FHIR JSON, validated before):

- `referral_events`: every referral-management Task whose focus is a ServiceRequest in
  the resources gives one `referral` event, published as the referring agency:
  `referral_id` = ServiceRequest.identifier[0].value (else its id); `occurred_at` =
  ServiceRequest.authoredOn (else Task.authoredOn); `subject_id` and `caregiver.*` from
  the Patient the ServiceRequest is about (its first identifier that is not an SSN; its
  current name, phone, address, language); `referred_to_service` from the
  ServiceRequest's code (Handoff's service-type system, a few SNOMED codes) or its SDOH
  category (food, housing, money ... are concrete supports), else OTHER;
  `referred_to_agency` from Task.owner (a Handoff agency identifier, or a reference or
  identifier listed in `agencies`), else the source's `receiver`; `urgency` from
  Task.priority or ServiceRequest.priority (`asap` PRIORITY, `urgent`/`stat` URGENT);
  `reason` from a reasonCode in Handoff's referral-reason system, else OTHER. The Task's
  own status is not imported: statuses come from the receiver.
- `status_event`: a Task update posted by the receiving agency gives one
  `referral_status` event: Task.status one to one; `businessStatus` and `statusReason`
  by Handoff's code systems (a reason given only as text becomes OTHER); `occurred_at` =
  Task.lastModified (else meta.lastUpdated, else authoredOn); `referral_id` from
  Task.focus (identifier, else the id of the referenced ServiceRequest); `referrer` from
  Task.requester like the owner above; `subject_id` from Task.for (identifier, else the
  Patient in the resources).

Event ids derive from the connector, the resource and its version, so posting the same
resources again publishes nothing twice. Problems name the resource and element, never a
value.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from referrals.errors import ReferralError
from referrals.fhir_codes import (
    AGENCY_SYSTEM,
    BUSINESS_STATUS_SYSTEM,
    CONCRETE_CATEGORIES,
    REASON_SYSTEM,
    REFERRAL_REASON_SYSTEM,
    SDOHCC_CATEGORY_SYSTEMS,
    SERVICE_BY_SNOMED,
    SERVICE_SYSTEM,
    SNOMED,
    SSN_SYSTEM,
    SUBJECT_SYSTEM,
    symbol_of,
)
from referrals.lifecycle import STATUS_FROM_FHIR, BusinessStatus, Reason

Problem = tuple[str, str, str]
_IDS = uuid.UUID("3b6e0c52-9f1d-4a7e-8c21-5d0f7a9e4b13")
SERVICES = frozenset({"HOME_VISITING", "FAMILY_PRESERVATION", "EARLY_INTERVENTION",
                      "SUD_TREATMENT", "BEHAVIORAL_HEALTH", "CONCRETE_SUPPORTS", "OTHER"})
REFERRAL_REASONS = frozenset({"NEW_BIRTH", "SUBSTANCE_EXPOSED_INFANT", "SCREENED_OUT_REPORT",
                              "FAMILY_REQUEST", "DEVELOPMENTAL_CONCERN", "OTHER"})


class FhirReferralError(ReferralError):
    """The resources are valid FHIR but do not say what a referral event needs."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{r} {e}: {m}" for r, e, m in problems))


@dataclass(frozen=True)
class FhirReferralSource:
    """Who posts the resources, and how its FHIR names map to Handoff agencies."""

    connector: str
    agency: str
    """The agency the connector publishes as."""
    agencies: Mapping[str, str] = field(default_factory=dict)
    """Organization reference (`Organization/abc`) or identifier value -> agency id."""
    receiver: str | None = None
    """The receiving agency when a Task's owner names none we know."""


# -- referrals ---------------------------------------------------------------------------


def referral_events(resources: Sequence[Mapping[str, Any]], source: FhirReferralSource
                    ) -> list[dict[str, Any]]:
    """One `referral` record (JSON form) per referral-management Task; raises
    `FhirReferralError` listing every gap."""
    index = _Index(resources)
    problems: list[Problem] = []
    events: list[dict[str, Any]] = []
    for task in index.of_type("Task"):
        request = index.get(task.get("focus"))
        if request is None or request.get("resourceType") != "ServiceRequest":
            problems.append((_label(task), "focus", "must reference the ServiceRequest in "
                                                    "the same post"))
            continue
        event = _referral(request, task, index, source, problems)
        if event is not None:
            events.append(event)
    if not events and not problems:
        problems.append(("Bundle", "entry", "holds no Task for a ServiceRequest"))
    if problems:
        raise FhirReferralError(problems)
    return events


def _referral(request: Mapping[str, Any], task: Mapping[str, Any], index: _Index,
              source: FhirReferralSource, problems: list[Problem]) -> dict[str, Any] | None:
    where = _label(request)
    patient = index.get(request.get("subject"))
    if patient is None or patient.get("resourceType") != "Patient":
        problems.append((where, "subject", "must reference the caregiver's Patient in the "
                                           "same post"))
        return None
    subject = _identifier(patient)
    given, family = _current_name(patient)
    found: list[Problem] = []
    if subject is None:
        found.append((_label(patient), "identifier", "required: the caregiver's identifier"))
    if family is None or given is None:
        found.append((_label(patient), "name", "required: the caregiver's given and "
                                               "family name"))
    authored = _instant(request.get("authoredOn") or task.get("authoredOn"))
    if authored is None:
        found.append((where, "authoredOn", "required (here or on the Task): when the "
                                           "referral was made"))
    problems += found
    if found:
        return None
    address = _current(patient.get("address"))
    language = ((patient.get("communication") or [{}])[0]).get("language")
    return {
        "event_id": _event_id(source, task, "referral"),
        "occurred_at": authored,
        "subject_id": subject,
        "referral_id": _identifier(request) or request.get("id"),
        "referred_to_service": _service(request),
        "referred_to_agency": _agency(task.get("owner"), source) or source.receiver,
        "referred_to_program": None,
        "reason": _coded(request.get("reasonCode") or [], REFERRAL_REASON_SYSTEM,
                         REFERRAL_REASONS) or "OTHER",
        "screening_decision": None,
        "allegation_summary": None,
        "urgency": {"asap": "PRIORITY", "urgent": "URGENT", "stat": "URGENT"}.get(
            str(task.get("priority") or request.get("priority") or ""), "ROUTINE"),
        "status": "SENT",
        "caregiver": {
            "first_name": given, "last_name": family, "phone": _phone(patient),
            "street_address": " ".join(address.get("line") or []) or None,
            "zip": address.get("postalCode"),
            "preferred_language": _first_code(language),
        },
        "child": None,
        "reporter": None,
    }


def _service(request: Mapping[str, Any]) -> str:
    for coding in (request.get("code") or {}).get("coding") or []:
        code = str(coding.get("code") or "")
        if coding.get("system") == SERVICE_SYSTEM and symbol_of(code) in SERVICES:
            return symbol_of(code)
        if coding.get("system") == SNOMED and code in SERVICE_BY_SNOMED:
            return SERVICE_BY_SNOMED[code]
    for concept in request.get("category") or []:
        for coding in concept.get("coding") or []:
            code = str(coding.get("code") or "").removesuffix("-domain")
            if coding.get("system") in SDOHCC_CATEGORY_SYSTEMS and code in \
                    CONCRETE_CATEGORIES:
                return "CONCRETE_SUPPORTS"
    return "OTHER"


# -- status updates ----------------------------------------------------------------------


def status_event(task: Mapping[str, Any], source: FhirReferralSource,
                 resources: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The `referral_status` record (JSON form) a Task update by the receiver stands for."""
    where = _label(task)
    problems: list[Problem] = []
    status = STATUS_FROM_FHIR.get(str(task.get("status") or ""))
    if status is None:
        problems.append((where, "status", "not a referral status Handoff tracks (draft, "
                                          "ready and entered-in-error are not)"))
    referral_id = _focus_id(task.get("focus"))
    if referral_id is None:
        problems.append((where, "focus", "required: the ServiceRequest (by identifier or "
                                         "reference) the Task is about"))
    referrer = _agency(task.get("requester"), source)
    if referrer is None:
        problems.append((where, "requester", "must name the referring agency (a Handoff "
                                             "agency identifier, or one configured)"))
    subject = _subject(task.get("for"), _Index(resources))
    if subject is None:
        problems.append((where, "for", "required: the caregiver's identifier, or a "
                                       "reference to their Patient in the same post"))
    meta = task.get("meta") or {}
    at = _instant(task.get("lastModified") or meta.get("lastUpdated")
                  or task.get("authoredOn"))
    if at is None:
        problems.append((where, "lastModified", "required: when the status changed"))
    business = _coded([task.get("businessStatus")] if task.get("businessStatus") else [],
                      BUSINESS_STATUS_SYSTEM, {b.value for b in BusinessStatus},
                      text_ok=True)
    if task.get("businessStatus") and business is None:
        problems.append((where, "businessStatus", "not a Handoff business status"))
    reason = _coded([task.get("statusReason")] if task.get("statusReason") else [],
                    REASON_SYSTEM, {r.value for r in Reason})
    if reason is None and task.get("statusReason"):
        reason = Reason.OTHER.value
    if problems:
        raise FhirReferralError(problems)
    assert status is not None
    return {
        "event_id": _event_id(source, task, f"status|{meta.get('versionId') or at}"),
        "occurred_at": at,
        "subject_id": subject,
        "referral_id": referral_id,
        "referrer": referrer,
        "recorded_by": source.agency,
        "program_id": None,
        "status": status.value,
        "business_status": business,
        "reason": reason,
    }


def _focus_id(focus: Any) -> str | None:
    if not isinstance(focus, Mapping):
        return None
    identifier = (focus.get("identifier") or {}).get("value")
    if identifier:
        return str(identifier)
    reference = str(focus.get("reference") or "")
    kind, _, rest = reference.rstrip("/").rpartition("/")
    return rest if rest and kind.endswith("ServiceRequest") else None


def _subject(reference: Any, index: _Index) -> str | None:
    if not isinstance(reference, Mapping):
        return None
    identifier = reference.get("identifier") or {}
    if identifier.get("value") and identifier.get("system") != SSN_SYSTEM:
        return str(identifier["value"])
    patient = index.get(reference)
    return _identifier(patient) if patient is not None else None


# -- element helpers ---------------------------------------------------------------------


class _Index:
    def __init__(self, resources: Sequence[Mapping[str, Any]]) -> None:
        self.resources = list(resources)
        self.by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in self.resources
                       if r.get("id")}

    def of_type(self, kind: str) -> Iterator[Mapping[str, Any]]:
        return (r for r in self.resources if r.get("resourceType") == kind)

    def get(self, reference: Any) -> Mapping[str, Any] | None:
        if not isinstance(reference, Mapping):
            return None
        ref = str(reference.get("reference") or "")
        tail = "/".join(ref.split("/")[-2:])
        return self.by_ref.get(ref) or self.by_ref.get(tail)


def _label(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id', '?')}"


def _event_id(source: FhirReferralSource, resource: Mapping[str, Any], kind: str) -> str:
    return str(uuid.uuid5(_IDS, f"{source.connector}|{_label(resource)}|{kind}"))


def _agency(reference: Any, source: FhirReferralSource) -> str | None:
    if not isinstance(reference, Mapping):
        return None
    identifier = reference.get("identifier") or {}
    if identifier.get("system") == AGENCY_SYSTEM and identifier.get("value"):
        return str(identifier["value"])
    for name in (reference.get("reference"), identifier.get("value")):
        if name and str(name) in source.agencies:
            return source.agencies[str(name)]
    return None


def _identifier(resource: Mapping[str, Any]) -> str | None:
    """Handoff's subject identifier if present, else the first that is not an SSN (an
    SSN is never used as a record identifier)."""
    found = [i for i in resource.get("identifier") or []
             if i.get("value") and i.get("system") != SSN_SYSTEM]
    preferred = [i for i in found if i.get("system") == SUBJECT_SYSTEM]
    chosen = (preferred or found)[:1]
    return str(chosen[0]["value"]) if chosen else None


def _current(items: Any) -> dict[str, Any]:
    """The entry whose period has not ended (the last such), else the first."""
    entries = [i for i in items or [] if isinstance(i, dict)]
    open_ = [i for i in entries if not (i.get("period") or {}).get("end")]
    return (open_ or entries or [{}])[-1 if open_ else 0]


def _current_name(patient: Mapping[str, Any]) -> tuple[str | None, str | None]:
    name = _current(patient.get("name"))
    given = name.get("given") or [None]
    return given[0], name.get("family")


def _phone(resource: Mapping[str, Any]) -> str | None:
    return next((t.get("value") for t in resource.get("telecom") or []
                 if t.get("system") == "phone"), None)


def _first_code(concept: Any) -> str | None:
    codings = concept.get("coding") or [] if isinstance(concept, Mapping) else []
    return next((str(c["code"]) for c in codings if c.get("code")), None)


def _coded(concepts: Sequence[Any], system: str, allowed: set[str] | frozenset[str],
           text_ok: bool = False) -> str | None:
    for concept in concepts or []:
        if not isinstance(concept, Mapping):
            continue
        for coding in concept.get("coding") or []:
            symbol = symbol_of(str(coding.get("code") or ""))
            if coding.get("system") == system and symbol in allowed:
                return symbol
        if text_ok and concept.get("text") and symbol_of(str(concept["text"])) in allowed:
            return symbol_of(str(concept["text"]))
    return None


def _instant(value: Any) -> str | None:
    """A FHIR dateTime or instant as ISO 8601 UTC (a date alone: its midnight UTC)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        if "T" not in text:
            parts = [int(p) for p in text.split("-")]
            day = dt.date(parts[0], parts[1] if len(parts) > 1 else 1,
                          parts[2] if len(parts) > 2 else 1)
            moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(text)
            if moment.tzinfo is None:
                return None  # FHIR requires a zone when a time is given
    except ValueError:
        return None
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
