"""FHIR R4 resources to Handoff events: which element feeds which field.

A **birth** comes from a Bundle as the BFDR IG (HL7 vital records birth reporting) or US
Core writes one: the newborn's `Patient`, the birth `Encounter` (subject: the newborn;
`period.start` is the event time), the mother as a `Patient` (BFDR: the subject of the
maternity Encounter) or a `RelatedPerson` of the newborn (relationship `MTH`, ...),
`Observation`s and the mother's `Coverage`. `connectors.fhir_birth` says how each is
found and `connectors.fhir_birth_facts` which Observation codes are read:

- `subject_id`: the mother's identifier, never an SSN (`connectors.fhir_identifiers`);
- `child.*`: the newborn `Patient`'s identifier (not an SSN), current official name,
  `birthDate`, sex (`gender`, or the US Core birthsex / individual-sex extension) and the
  Observations about the newborn;
- `mother.*`: her current name, `birthDate`, phone `telecom`, home `address`, an SSN
  identifier (ssn) and one of type `MA` (medicaid_id), US Core race and ethnicity text,
  Observations about her, and her `Coverage` (medicaid_covered_birth);
- `hospital_id`: the birth Encounter's `serviceProvider`, else the NPI of its Location,
  else the maternity Encounter's `serviceProvider`, else the connector's;
- `county_fips`: the mother's home `address.district` when it is 5 digits, else her
  address's `state` and VR `DistrictCode` extension, else the connector's `county_fips`
  when she lives in that county's state; else null, never another state's county.

A fact the bundle does not state is null (county, Medicaid, NICU admission); a field an
event cannot go without, or an Observation that must be sent (birth weight, gestational
age), is refused naming the FHIR resource and element to add.

A **referral** comes from each `ServiceRequest`: `identifier` (or its id) →
`referral_id`; `authoredOn` → `occurred_at`; the `subject` Patient is the caregiver
(`caregiver.*`, and its identifier, never an SSN, is `subject_id`); `code` (a Handoff
service name such as `HOME_VISITING`) → `referred_to_service`; `reasonCode` → `reason`;
`priority` → `urgency`; `status` → `status`; `performer[0].display` →
`referred_to_agency`; a `RelatedPerson` with relationship `CHILD` of the subject →
`child`.

SDOHCC referral management **Tasks** are mapped by `connectors.fhir_referral_tasks`: a
Task whose `focus` is a ServiceRequest in the bundle is a referral (that ServiceRequest
is then not mapped on its own, above), any other Task a `referral_status` update.

Every event gets an `event_id` derived from the connector, the bundle's identity and the
resource, so posting the same bundle again publishes nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.fhir_birth import birth_encounters, birth_event
from connectors.fhir_birth_facts import FACTS_SYSTEM, LOINC
from connectors.fhir_bundle import (
    BundleIndex,
    BundleTooLarge,
    Problem,
    Resource,
    check_entry_count,
    codings,
    home_address,
    label,
    person_name,
    phone,
)
from connectors.fhir_identifiers import SSN_SYSTEMS, missing_id_message, record_id
from connectors.fhir_referral_tasks import referral_task_events
from referrals.fhir_in import FhirReferralSource

__all__ = ["FACTS_SYSTEM", "LOINC", "SSN_SYSTEMS", "BundleTooLarge", "FhirMappingError",
           "MappedEvent", "MappingDefaults", "Problem", "check_entry_count", "map_bundle"]

_EVENT_IDS = uuid.UUID("5d1f3c5e-8a0b-4c55-9d0e-6f2a1b7c4e90")


class FhirMappingError(ValueError):
    """The bundle is valid FHIR but does not say what a Handoff event needs."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{r} {e}: {m}" for r, e, m in problems))


@dataclass(frozen=True)
class MappedEvent:
    event_type: str
    event: dict[str, Any]
    resource: str
    """The resource the event stands for ("Encounter/enc-1"), for reports."""


@dataclass(frozen=True)
class MappingDefaults:
    connector: str
    hospital_id: str | None = None
    county_fips: str | None = None
    """Used only for mothers whose address is in this county's state."""
    agency: str = ""
    """The agency the connector publishes as (referral Tasks: the referrer or receiver)."""
    agencies: Mapping[str, str] = field(default_factory=dict)
    """FHIR Organization references or identifier values -> Handoff agency ids."""
    receiver: str | None = None
    """The receiving agency of a referral Task whose owner names none we know."""


def map_bundle(bundle: Mapping[str, Any], defaults: MappingDefaults) -> list[MappedEvent]:
    """The events a (validated) Bundle stands for; `FhirMappingError` lists every gap."""
    identifier = bundle.get("identifier")
    bundle_key = (identifier.get("value") if isinstance(identifier, Mapping) else None) \
        or bundle.get("id")
    index = BundleIndex(bundle)
    problems: list[Problem] = []
    events: list[MappedEvent] = []
    for encounter in birth_encounters(index, problems):
        event = birth_event(index, encounter, defaults.hospital_id, defaults.county_fips,
                            problems)
        if event is not None:
            event_id = _event_id(defaults, bundle_key, encounter, "birth")
            events.append(MappedEvent("birth", {"event_id": event_id, **event},
                                      label(encounter)))
    source = FhirReferralSource(defaults.connector, defaults.agency, defaults.agencies,
                                defaults.receiver)
    tasks, consumed = referral_task_events(index, source, problems)
    events.extend(MappedEvent(t, e, where) for t, e, where in tasks)
    for request in index.of_type("ServiceRequest"):
        if label(request) not in consumed:
            events.extend(_referral(request, index, defaults, bundle_key, problems))
    if not events and not problems:
        problems.append(("Bundle", "entry", "holds no birth Encounter, ServiceRequest or "
                                            "Task"))
    if problems:
        raise FhirMappingError(problems)
    return events


def _event_id(defaults: MappingDefaults, bundle_key: str | None, resource: Resource,
              kind: str) -> str:
    return str(uuid.uuid5(_EVENT_IDS, f"{defaults.connector}|{bundle_key}|{label(resource)}"
                                      f"|{kind}"))


def _referral(request: Resource, index: BundleIndex, defaults: MappingDefaults,
              bundle_key: str | None, problems: list[Problem]) -> list[MappedEvent]:
    where = label(request)
    caregiver = index.get(request.get("subject"))
    if caregiver is None:
        problems.append((where, "subject", "must reference the caregiver's Patient in the "
                                           "bundle"))
        return []
    found: list[Problem] = []
    if not request.get("authoredOn"):
        found.append((where, "authoredOn", "required: when the referral was made"))
    subject_id = record_id(caregiver)
    if subject_id is None:
        found.append((label(caregiver), "identifier", missing_id_message(caregiver)))
    problems.extend(found)
    if found:
        return []
    child = next((r for r in index.of_type("RelatedPerson")
                  if index.refers_to(r.get("patient"), caregiver)
                  and any(c.upper() == "CHILD" for concept in r.get("relationship") or []
                          for _, c in codings(concept))), None)
    name = person_name(caregiver)
    address = home_address(caregiver)
    performer = (request.get("performer") or [{}])[0]
    event = {
        "event_id": _event_id(defaults, bundle_key, request, "referral"),
        "occurred_at": request.get("authoredOn"),
        "subject_id": subject_id,
        "referral_id": record_id(request) or request.get("id"),
        "referred_to_service": _first_code(request.get("code")) or "OTHER",
        "referred_to_agency": performer.get("display"),
        "reason": _first_code((request.get("reasonCode") or [None])[0]) or "OTHER",
        "screening_decision": None, "allegation_summary": None,
        "urgency": {"urgent": "URGENT", "stat": "URGENT", "asap": "PRIORITY"}.get(
            request.get("priority") or "", "ROUTINE"),
        "status": {"completed": "CLOSED", "revoked": "DECLINED",
                   "entered-in-error": "DECLINED"}.get(request.get("status") or "", "SENT"),
        "caregiver": {"first_name": name[0], "last_name": name[1], "phone": phone(caregiver),
                      "street_address": " ".join(address.get("line") or []) or None,
                      "zip": address.get("postalCode"),
                      "preferred_language": _first_code(
                          ((caregiver.get("communication") or [{}])[0]).get("language"))},
        "child": ({"first_name": person_name(child)[0], "birth_date": child.get("birthDate")}
                  if child else None),
        "reporter": None,
    }
    return [MappedEvent("referral", event, where)]


def _first_code(concept: Mapping[str, Any] | None) -> str | None:
    code = next((c for _, c in codings(concept) if c), None)
    return code.upper().replace("-", "_") if code else None
