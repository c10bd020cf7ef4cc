"""A live birth in FHIR, as the BFDR IG and US Core write it, to a Handoff birth event.

**Which Encounter is the birth.** The `Encounter` a live birth report `Composition`
(LOINC `68998-4` provider, `92011-6` jurisdiction) names, one claiming the BFDR
`Encounter-birth` profile, or any other Encounter that is not the mother's: not
`Encounter-maternity`, not the `partOf` target of another Encounter. Its `subject` is the
newborn's `Patient`. A fetal death report (`69045-3`, `92010-8`) is refused.

**Who is the mother**, first found of:

1. BFDR: the `subject` Patient of the maternity Encounter, named by the Composition's
   `Extension-encounter-maternity-reference` or by the birth Encounter's `partOf`;
2. a `RelatedPerson` whose `patient` is the newborn, relationship `MTH`, `NMTH`,
   `BIRTHMTH`, `GESTM` or `MOTHER` (US Core), together with her own `Patient` when one
   `Patient.link.other` points at that RelatedPerson (read first, the RelatedPerson
   filling what it lacks);
3. the one Patient claiming the VR common library's `Patient-mother-vr` profile.

Nothing is invented: a fact the bundle does not state is null (county, Medicaid, NICU),
and what an event cannot go without is refused, naming the FHIR element to send.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors import fhir_birth_facts as facts_of
from connectors.fhir_birth_facts import LOINC, Facts
from connectors.fhir_bundle import (
    BundleIndex,
    Problem,
    Resource,
    codings,
    extension,
    extension_value,
    has_code,
    has_profile,
    home_address,
    label,
    person_name,
    phone,
)
from connectors.fhir_identifiers import missing_id_message, record_id, ssn, typed_id
from connectors.us_fips import state_fips

LIVE_BIRTH_REPORTS = ("68998-4", "92011-6")
FETAL_DEATH_REPORTS = ("69045-3", "92010-8")
MOTHER_CODES = frozenset({"MTH", "NMTH", "BIRTHMTH", "GESTM", "MOTHER"})
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
_FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SEX = {"female": "FEMALE", "male": "MALE", "other": "UNDETERMINED", "unknown": "UNDETERMINED",
        "F": "FEMALE", "M": "MALE", "UNK": "UNDETERMINED",
        "248152002": "FEMALE", "248153007": "MALE"}
"""AdministrativeGender, US Core birthsex, and US Core individual-sex (SNOMED) codes."""


def birth_encounters(index: BundleIndex, problems: list[Problem]) -> list[Resource]:
    compositions = list(index.of_type("Composition"))
    fetal = [c for c in compositions if has_code(c.get("type"), LOINC, *FETAL_DEATH_REPORTS)]
    for report in fetal:
        problems.append((label(report), "type", "a report of fetal death: this source "
                                                "publishes live births"))
    if fetal:
        return []
    named = [index.get(c.get("encounter")) for c in compositions
             if has_code(c.get("type"), LOINC, *LIVE_BIRTH_REPORTS)]
    maternity = [m for c in compositions for m in [_maternity_of_report(index, c)] if m]
    encounters = list(index.of_type("Encounter"))
    for encounter in encounters:
        part_of = index.get(encounter.get("partOf"))
        if part_of is not None:
            maternity.append(part_of)
        if has_profile(encounter, "Encounter-maternity") or "MTH" in _role(encounter):
            maternity.append(encounter)
    return [e for e in encounters
            if any(e is n for n in named) or has_profile(e, "Encounter-birth")
            or not any(e is m for m in maternity)]


def _maternity_of_report(index: BundleIndex, report: Resource) -> Resource | None:
    ext = extension(report.get("encounter"), "/Extension-encounter-maternity-reference")
    value = extension_value(ext)
    return index.get(value) if isinstance(value, Mapping) else None


def _role(resource: Resource) -> set[str]:
    value = extension_value(extension(resource, "/Extension-role"))
    return {c.upper() for _, c in codings(value if isinstance(value, Mapping) else None)}


def _relationships(related: Resource) -> set[str]:
    return {c.upper() for concept in related.get("relationship") or []
            for _, c in codings(concept)}


def find_mother(index: BundleIndex, encounter: Resource, child: Resource
                ) -> tuple[Resource | None, Resource | None]:
    """(the mother's main record, a second record of her that fills its gaps)."""
    maternity = [index.get(encounter.get("partOf"))]
    maternity += [_maternity_of_report(index, c) for c in index.of_type("Composition")
                  if index.refers_to(c.get("encounter"), encounter)]
    patient = next((s for m in maternity if m is not None
                    for s in [index.get(m.get("subject"))]
                    if s is not None and s.get("resourceType") == "Patient"
                    and s is not child), None)
    related = next((r for r in index.of_type("RelatedPerson")
                    if index.refers_to(r.get("patient"), child)
                    and _relationships(r) & MOTHER_CODES), None)
    if patient is None and related is not None:
        patient = next((p for p in index.of_type("Patient")
                        if any(index.refers_to(link.get("other"), related)
                               for link in p.get("link") or [])), None)
    if patient is None and related is None:
        profiled = [p for p in index.of_type("Patient") if has_profile(p, "Patient-mother-vr")]
        patient = profiled[0] if len(profiled) == 1 else None
    if patient is None:
        return related, None
    return patient, related


def birth_event(index: BundleIndex, encounter: Resource, hospital_id: str | None,
                county_fips: str | None, problems: list[Problem]) -> dict[str, Any] | None:
    """The birth event (without `event_id`) of one birth Encounter, or None with the
    problems that keep it from being one."""
    where = label(encounter)
    child = index.get(encounter.get("subject"))
    if child is None or child.get("resourceType") != "Patient":
        problems.append((where, "subject", "must reference the newborn's Patient in the "
                                           "bundle"))
        return None
    mother, second = find_mother(index, encounter, child)
    if mother is None:
        problems.append((label(child), "RelatedPerson or maternity Encounter",
                         "no mother for this newborn: send her as "
                         "the subject Patient of the maternity Encounter this Encounter is "
                         "partOf (BFDR), or as a RelatedPerson with relationship MTH whose "
                         "patient is the newborn (US Core)"))
        return None
    found: list[Problem] = []
    mothers = tuple(m for m in (mother, second) if m is not None)
    facts = Facts.of(index, child, mothers)

    def need(value: Any, resource: Resource, element: str, message: str) -> Any:
        if value is None:
            found.append((label(resource), element, message))
        return value

    child_first, child_family = person_name(child)
    mother_first, mother_family = _either(person_name(mother), person_name(second))
    both = {"identifier": [*(mother.get("identifier") or []),
                           *((second or {}).get("identifier") or [])]}
    address = home_address(mother) or home_address(second)
    event = {
        "occurred_at": need(_birth_time(encounter, child), encounter, "period.start",
                            "required: the time of birth"),
        "subject_id": need(record_id(both), mother, "identifier", missing_id_message(both)),
        "child": {
            "child_id": need(record_id(child), child, "identifier",
                             missing_id_message(child)),
            "first_name": child_first,
            "last_name": need(child_family, child, "name.family",
                              "required: the newborn's family name"),
            "birth_date": need(_full_date(child), child, "birthDate",
                               "required: the newborn's full date of birth (YYYY-MM-DD)"),
            "sex": need(_sex(child), child, "gender", "required: the newborn's sex (gender, "
                        "or the US Core birthsex or individual-sex extension)"),
            "birth_weight_grams": facts_of.birth_weight(facts, child, found),
            "gestational_age_weeks": facts_of.gestational_age(facts, child, found),
            "nicu_admission": facts_of.nicu_admission(facts),
            "substance_exposure": facts_of.substance_exposure(facts, found),
            "plan_of_safe_care": facts_of.boolean(facts, "plan-of-safe-care"),
        },
        "mother": {
            "first_name": need(mother_first, mother, "name.given",
                               "required: the mother's given name"),
            "last_name": need(mother_family, mother, "name.family",
                              "required: the mother's family name"),
            "ssn": ssn(mother) or ssn(second),
            "birth_date": need(_full_date(mother) or _full_date(second), mother, "birthDate",
                               "required: the mother's full date of birth (YYYY-MM-DD)"),
            "street_address": " ".join(address.get("line") or []) or None,
            "zip": address.get("postalCode"),
            "phone": phone(mother) or phone(second),
            "race_ethnicity": _race_ethnicity(mother) or _race_ethnicity(second),
            "medicaid_id": typed_id(mother, "MA") or typed_id(second, "MA"),
            "medicaid_covered_birth": facts_of.medicaid_covered(index, facts, mothers),
            "prenatal_visits": facts_of.prenatal_visits(facts),
            "receiving_mat": facts_of.boolean(facts, "receiving-mat", mother_first=True),
        },
        "hospital_id": need(_hospital(index, encounter) or hospital_id, encounter,
                            "serviceProvider", "required: the birthing facility (an "
                            "Organization or birth Location with an NPI identifier), or set "
                            "hospital_id on the connector"),
        "county_fips": county(address, county_fips),
    }
    problems.extend(found)
    return None if found else event


def _either(first: tuple[str | None, str | None], second: tuple[str | None, str | None]
            ) -> tuple[str | None, str | None]:
    return first[0] or second[0], first[1] or second[1]


def _birth_time(encounter: Resource, child: Resource) -> str | None:
    start = (encounter.get("period") or {}).get("start")
    if start:
        return str(start)
    value = extension_value(extension(child.get("_birthDate"), "/patient-birthTime"))
    return str(value) if value else None


def _full_date(person: Resource | None) -> str | None:
    value = (person or {}).get("birthDate")
    return str(value) if value and _FULL_DATE.match(str(value)) else None


def _sex(child: Resource) -> str | None:
    for tail in ("/us-core-birthsex", "/us-core-individual-sex"):
        value = extension_value(extension(child, tail))
        code = value.get("code") if isinstance(value, Mapping) else value
        if code and str(code) in _SEX:
            return _SEX[str(code)]
    gender = child.get("gender")
    return _SEX.get(str(gender)) if gender else None


def _race_ethnicity(person: Resource | None) -> str | None:
    """The US Core race and ethnicity extensions' `text`, as written."""
    parts = []
    for tail in ("/us-core-race", "/us-core-ethnicity"):
        text = extension_value(extension(extension(person, tail), "text"))
        if isinstance(text, str) and text.strip():
            parts.append(text.strip())
    return "; ".join(parts) or None


def _npi(resource: Resource | None) -> str | None:
    identifiers = [i for i in (resource or {}).get("identifier") or []
                   if isinstance(i, Mapping) and i.get("value")]
    chosen = next((i for i in identifiers if i.get("system") == NPI_SYSTEM),
                  identifiers[0] if identifiers else None)
    return str(chosen["value"]) if chosen else None


def _provider(index: BundleIndex, encounter: Resource | None) -> str | None:
    reference = (encounter or {}).get("serviceProvider") or {}
    given = (reference.get("identifier") or {}).get("value")
    return str(given) if given else _npi(index.get(reference))


def _hospital(index: BundleIndex, encounter: Resource) -> str | None:
    """The birth Encounter's serviceProvider, else its (BFDR birth) Location's NPI, else
    the maternity Encounter's serviceProvider."""
    places = [index.get(p.get("location")) for p in encounter.get("location") or []]
    places.sort(key=lambda p: not any(c == "loc_birth" for t in (p or {}).get("type") or []
                                      for _, c in codings(t)))
    return (_provider(index, encounter)
            or next((n for p in places for n in [_npi(p)] if n), None)
            or _provider(index, index.get(encounter.get("partOf"))))


def county(address: Mapping[str, Any], default: str | None) -> str | None:
    """The 5-digit county FIPS code of an address: its `district` when that is one; its
    state and the VR `DistrictCode` extension on `district`; else the connector's default
    county, only when the address is in that county's state. Otherwise unknown (None)."""
    district = str(address.get("district") or "").strip()
    if len(district) == 5 and district.isdigit():
        return district
    state = state_fips(address.get("state"))
    code = extension_value(extension(address.get("_district"), "/DistrictCode"))
    code_text = str(code).strip() if code is not None else ""
    if state and code_text.isdigit() and 0 < len(code_text) <= 3:
        return state + code_text.zfill(3)
    if default and state and default.startswith(state):
        return default
    return None
