"""FHIR R4 resources to Handoff events: which element feeds which field.

A **birth** comes from a Bundle holding the newborn's `Patient`, the mother as a
`RelatedPerson` (relationship `MTH`, `NMTH`, `BIRTHMTH` or `MOTHER`) whose `patient` is the
newborn, the birth `Encounter` (subject: the newborn; its `period.start` is the event
time) and `Observation`s about the newborn:

- `subject_id`: the mother's first `identifier.value` (the newborn's when she has none);
- `child.*`: the newborn `Patient`'s `identifier[0].value`, `name[0].given[0]`,
  `name[0].family`, `birthDate`, `gender`; Observations LOINC `8339-4` (birth weight,
  `valueQuantity` in g or kg), `11884-4` or `76516-4` (gestational age in weeks), and
  `nicu-admission`, `plan-of-safe-care` (`valueBoolean`), `substance-exposure`
  (`valueCodeableConcept`: NONE, OPIOIDS, ...);
- `mother.*`: the `RelatedPerson`'s name, `birthDate`, phone `telecom`, `address[0]`
  (line, postalCode), identifiers with system `http://hl7.org/fhir/sid/us-ssn` (ssn) and
  type `MA` (medicaid_id); Observations `medicaid-covered-birth`, `receiving-mat`
  (`valueBoolean`) and LOINC `68493-7` (prenatal visits);
- `hospital_id`: `Encounter.serviceProvider.identifier.value`, else the connector's;
- `county_fips`: the mother's `address[0].district` when it is 5 digits, else the
  connector's.

Codes without a LOINC are in the code system `FACTS_SYSTEM`.

A **referral** comes from each `ServiceRequest`: `identifier[0].value` (or its id) →
`referral_id`; `authoredOn` → `occurred_at`; the `subject` Patient is the caregiver
(`caregiver.*`, and its identifier is `subject_id`); `code` (a Handoff service name such as
`HOME_VISITING`) → `referred_to_service`; `reasonCode` → `reason`; `priority` →
`urgency`; `status` → `status`; `performer[0].display` → `referred_to_agency`; a
`RelatedPerson` with relationship `CHILD` of the subject → `child`.

Every event gets an `event_id` derived from the connector, the bundle's identity and the
resource, so posting the same bundle again publishes nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

FACTS_SYSTEM = "https://handoff.example.org/fhir/CodeSystem/birth-facts"
LOINC = "http://loinc.org"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
MOTHER_CODES = {"MTH", "NMTH", "BIRTHMTH", "MOTHER"}
_EVENT_IDS = uuid.UUID("5d1f3c5e-8a0b-4c55-9d0e-6f2a1b7c4e90")

Problem = tuple[str, str, str]
"""(resource, element, message): `("Observation/bw", "valueQuantity", "...")`."""


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


def map_bundle(bundle: dict[str, Any], defaults: MappingDefaults) -> list[MappedEvent]:
    """The events a (validated) Bundle stands for; `FhirMappingError` lists every gap."""
    resources = [e["resource"] for e in bundle.get("entry") or [] if e.get("resource")]
    bundle_key = (bundle.get("identifier") or {}).get("value") or bundle.get("id")
    index = _Index(resources)
    problems: list[Problem] = []
    events: list[MappedEvent] = []
    for encounter in index.of_type("Encounter"):
        events.extend(_birth(encounter, index, defaults, bundle_key, problems))
    for request in index.of_type("ServiceRequest"):
        events.extend(_referral(request, index, defaults, bundle_key, problems))
    if not events and not problems:
        problems.append(("Bundle", "entry", "holds no birth Encounter and no ServiceRequest"))
    if problems:
        raise FhirMappingError(problems)
    return events


class _Index:
    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.resources = resources
        self.by_ref = {f"{r['resourceType']}/{r['id']}": r for r in resources if r.get("id")}

    def of_type(self, kind: str) -> Iterator[dict[str, Any]]:
        return (r for r in self.resources if r.get("resourceType") == kind)

    def get(self, reference: dict[str, Any] | None) -> dict[str, Any] | None:
        ref = (reference or {}).get("reference") or ""
        return self.by_ref.get(ref.removeprefix("urn:uuid:")) or self.by_ref.get(ref)


def _label(resource: dict[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id', '?')}"


def _event_id(defaults: MappingDefaults, bundle_key: str | None, resource: dict[str, Any],
              kind: str) -> str:
    return str(uuid.uuid5(_EVENT_IDS, f"{defaults.connector}|{bundle_key}|{_label(resource)}"
                                      f"|{kind}"))


def _birth(encounter: dict[str, Any], index: _Index, defaults: MappingDefaults,
           bundle_key: str | None, problems: list[Problem]) -> list[MappedEvent]:
    where = _label(encounter)
    child = index.get(encounter.get("subject"))
    if child is None or child.get("resourceType") != "Patient":
        problems.append((where, "subject", "must reference the newborn's Patient in the "
                                           "bundle"))
        return []
    child_ref = _label(child)
    mother = next((r for r in index.of_type("RelatedPerson")
                   if (r.get("patient") or {}).get("reference") == child_ref
                   and _codes(r.get("relationship")) & MOTHER_CODES), None)
    if mother is None:
        problems.append((child_ref, "RelatedPerson", "no RelatedPerson with relationship "
                                                     "MTH for the newborn"))
        return []
    facts = _observations(index, child_ref)
    start = (encounter.get("period") or {}).get("start")
    if not start:
        problems.append((where, "period.start", "required: the time of birth"))
    address = (mother.get("address") or [{}])[0]
    district = address.get("district") or ""
    county = district if district.isdigit() and len(district) == 5 else defaults.county_fips
    provider = (encounter.get("serviceProvider") or {}).get("identifier") or {}
    hospital = provider.get("value") or defaults.hospital_id
    for value, element, what in ((county, "address.district", "county_fips"),
                                 (hospital, "serviceProvider.identifier", "hospital_id")):
        if not value:
            problems.append((_label(mother) if what == "county_fips" else where, element,
                             f"required, or set {what} on the connector"))
    child_name, mother_name = _name(child), _name(mother)
    event = {
        "event_id": _event_id(defaults, bundle_key, encounter, "birth"),
        "occurred_at": start,
        "subject_id": _identifier(mother) or _identifier(child),
        "child": {
            "child_id": _identifier(child), "first_name": child_name[0],
            "last_name": child_name[1], "birth_date": child.get("birthDate"),
            "sex": {"female": "FEMALE", "male": "MALE"}.get(child.get("gender") or "",
                                                            "UNDETERMINED"),
            "birth_weight_grams": _grams(facts.get("8339-4")),
            "gestational_age_weeks": _number(facts.get("11884-4") or facts.get("76516-4")),
            "nicu_admission": _value(facts.get("nicu-admission")),
            "substance_exposure": _code(facts.get("substance-exposure")) or "UNKNOWN",
            "plan_of_safe_care": _value(facts.get("plan-of-safe-care")),
        },
        "mother": {
            "first_name": mother_name[0], "last_name": mother_name[1],
            "ssn": _identifier(mother, system=SSN_SYSTEM),
            "birth_date": mother.get("birthDate"),
            "street_address": " ".join(address.get("line") or []) or None,
            "zip": address.get("postalCode"), "phone": _phone(mother),
            "race_ethnicity": None, "medicaid_id": _identifier(mother, type_code="MA"),
            "medicaid_covered_birth": bool(_value(facts.get("medicaid-covered-birth"))),
            "prenatal_visits": _number(facts.get("68493-7")),
            "receiving_mat": _value(facts.get("receiving-mat")),
        },
        "hospital_id": hospital, "county_fips": county,
    }
    return [MappedEvent("birth", event, where)]


def _referral(request: dict[str, Any], index: _Index, defaults: MappingDefaults,
              bundle_key: str | None, problems: list[Problem]) -> list[MappedEvent]:
    where = _label(request)
    caregiver = index.get(request.get("subject"))
    if caregiver is None:
        problems.append((where, "subject", "must reference the caregiver's Patient in the "
                                           "bundle"))
        return []
    if not request.get("authoredOn"):
        problems.append((where, "authoredOn", "required: when the referral was made"))
    subject_ref = _label(caregiver)
    child = next((r for r in index.of_type("RelatedPerson")
                  if (r.get("patient") or {}).get("reference") == subject_ref
                  and "CHILD" in _codes(r.get("relationship"))), None)
    name = _name(caregiver)
    address = (caregiver.get("address") or [{}])[0]
    performer = (request.get("performer") or [{}])[0]
    event = {
        "event_id": _event_id(defaults, bundle_key, request, "referral"),
        "occurred_at": request.get("authoredOn"),
        "subject_id": _identifier(caregiver),
        "referral_id": _identifier(request) or request.get("id"),
        "referred_to_service": _first_code(request.get("code")) or "OTHER",
        "referred_to_agency": performer.get("display"),
        "reason": _first_code((request.get("reasonCode") or [None])[0]) or "OTHER",
        "screening_decision": None, "allegation_summary": None,
        "urgency": {"urgent": "URGENT", "stat": "URGENT", "asap": "PRIORITY"}.get(
            request.get("priority") or "", "ROUTINE"),
        "status": {"completed": "CLOSED", "revoked": "DECLINED",
                   "entered-in-error": "DECLINED"}.get(request.get("status") or "", "SENT"),
        "caregiver": {"first_name": name[0], "last_name": name[1], "phone": _phone(caregiver),
                      "street_address": " ".join(address.get("line") or []) or None,
                      "zip": address.get("postalCode"),
                      "preferred_language": _first_code(
                          ((caregiver.get("communication") or [{}])[0]).get("language"))},
        "child": ({"first_name": _name(child)[0], "birth_date": child.get("birthDate")}
                  if child else None),
        "reporter": None,
    }
    return [MappedEvent("referral", event, where)]


# -- element helpers ----------------------------------------------------------------------


def _observations(index: _Index, subject_ref: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for obs in index.of_type("Observation"):
        if (obs.get("subject") or {}).get("reference") != subject_ref:
            continue
        for coding in (obs.get("code") or {}).get("coding") or []:
            if coding.get("system") in (LOINC, FACTS_SYSTEM) and coding.get("code"):
                found[coding["code"]] = obs
    return found


def _codes(concepts: Any) -> set[str]:
    return {c.get("code", "").upper() for concept in concepts or []
            for c in concept.get("coding") or []}


def _first_code(concept: dict[str, Any] | None) -> str | None:
    for coding in (concept or {}).get("coding") or []:
        if coding.get("code"):
            return str(coding["code"]).upper().replace("-", "_")
    return None


def _name(resource: dict[str, Any] | None) -> tuple[str | None, str | None]:
    name = ((resource or {}).get("name") or [{}])[0]
    given = name.get("given") or [None]
    return given[0], name.get("family")


def _identifier(resource: dict[str, Any], system: str | None = None,
                type_code: str | None = None) -> str | None:
    for ident in resource.get("identifier") or []:
        if system and ident.get("system") != system:
            continue
        if type_code and type_code not in _codes([ident.get("type") or {}]):
            continue
        if not system and not type_code and ident.get("system") == SSN_SYSTEM:
            continue        # never use an SSN as a record identifier
        if ident.get("value"):
            return str(ident["value"])
    return None


def _phone(resource: dict[str, Any]) -> str | None:
    return next((t.get("value") for t in resource.get("telecom") or []
                 if t.get("system") == "phone"), None)


def _value(obs: dict[str, Any] | None) -> Any:
    if obs is None:
        return None
    for key in ("valueBoolean", "valueInteger"):
        if key in obs:
            return obs[key]
    return None


def _number(obs: dict[str, Any] | None) -> int | None:
    if obs is None:
        return None
    if "valueInteger" in obs:
        return int(obs["valueInteger"])
    quantity = obs.get("valueQuantity") or {}
    return round(float(quantity["value"])) if "value" in quantity else None


def _grams(obs: dict[str, Any] | None) -> int | None:
    quantity = (obs or {}).get("valueQuantity") or {}
    if "value" not in quantity:
        return None
    factor = 1000 if (quantity.get("code") or quantity.get("unit")) == "kg" else 1
    return round(float(quantity["value"]) * factor)


def _code(obs: dict[str, Any] | None) -> str | None:
    return _first_code((obs or {}).get("valueCodeableConcept"))
