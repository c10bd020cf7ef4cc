"""What a birth bundle's Observations and Coverage say about the newborn and the mother.

Observations are read as the BFDR IG (HL7 vital records birth and fetal death reporting)
and Handoff's own birth-facts code system (`FACTS_SYSTEM`) write them, by `code`:

- birth weight: LOINC `8339-4`, `valueQuantity` in `g`, `kg`, `[lb_av]` or `[oz_av]`;
- gestational age: LOINC `11884-4` or `76516-4`, `valueQuantity` in `wk` or `d`
  (completed weeks);
- NICU admission: LOINC `73812-0` (BFDR abnormal conditions of the newborn) valued SNOMED
  `830077005` (admitted) or `260413007` (none of the conditions), or birth-facts
  `nicu-admission` (`valueBoolean`);
- prenatal visits: LOINC `68493-6` (`68493-7` also read), `valueInteger`;
- birth-facts `substance-exposure` (`valueCodeableConcept`), `plan-of-safe-care`,
  `receiving-mat` and `medicaid-covered-birth` (`valueBoolean`).

The mother's Medicaid coverage of the birth comes first from a `Coverage` whose
beneficiary is the mother (BFDR's principal payer for the delivery, or a US Core
Coverage): its `type` in the Source of Payment Typology (`https://nahdo.org/sopt`, OID
`2.16.840.1.113883.3.221.5`) says Medicaid with a code starting `2`, not Medicaid with any
other code, and nothing with `9999` (unknown).

An Observation that is present with a `dataAbsentReason` (or without a value) says the
fact is unknown: the field is null. Observations `entered-in-error` or `cancelled` are
ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from connectors.fhir_bundle import BundleIndex, Problem, Resource, codings, has_code, label

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
FACTS_SYSTEM = "https://handoff.example.org/fhir/CodeSystem/birth-facts"
SOPT_SYSTEMS = frozenset({"https://nahdo.org/sopt", "http://nahdo.org/sopt",
                          "urn:oid:2.16.840.1.113883.3.221.5"})
SOPT_UNKNOWN = "9999"
NICU_ADMITTED, NO_ABNORMAL_CONDITION = "830077005", "260413007"
SUBSTANCES = ("NONE", "OPIOIDS", "STIMULANTS", "ALCOHOL", "CANNABIS", "MULTIPLE", "UNKNOWN")
_IGNORED_STATUS = {"entered-in-error", "cancelled"}
_GRAMS = {"g": 1.0, "kg": 1000.0, "[lb_av]": 453.59237, "lb": 453.59237,
          "[oz_av]": 28.349523125, "oz": 28.349523125}
_WEEKS = {"wk": 1.0, "week": 1.0, "weeks": 1.0, "d": 1 / 7, "day": 1 / 7, "days": 1 / 7}

BIRTH_WEIGHT = (LOINC, ("8339-4",), "birth weight")
GESTATIONAL_AGE = (LOINC, ("11884-4", "76516-4"), "gestational age")
PRENATAL_VISITS = (LOINC, ("68493-6", "68493-7"), "number of prenatal visits")


@dataclass(frozen=True)
class Facts:
    """The Observations of one birth: about the newborn, and about the mother."""

    child: tuple[Resource, ...]
    mother: tuple[Resource, ...]

    @classmethod
    def of(cls, index: BundleIndex, child: Resource, mothers: tuple[Resource, ...]) -> Facts:
        about_child: list[Resource] = []
        about_mother: list[Resource] = []
        for obs in index.of_type("Observation"):
            if obs.get("status") in _IGNORED_STATUS:
                continue
            subject = index.get(obs.get("subject"))
            focus = [index.get(f) for f in obs.get("focus") or []]
            if subject is child:
                about_child.append(obs)
            elif any(subject is m for m in mothers) and (
                    not focus or any(f is child for f in focus)):
                about_mother.append(obs)
        return cls(tuple(about_child), tuple(about_mother))

    def find(self, system: str, codes: tuple[str, ...], mother_first: bool = False
             ) -> Resource | None:
        order = self.mother + self.child if mother_first else self.child + self.mother
        return next((o for o in order if has_code(o.get("code"), system, *codes)), None)


def requirement(child: Resource, what: tuple[str, tuple[str, ...], str], shape: str
                ) -> Problem:
    system, codes, name = what
    return (label(child), f"Observation (code {system}|{codes[0]})",
            f"required: the {name}, an Observation with this code whose subject is the "
            f"newborn ({shape}; a dataAbsentReason when it is unknown)")


def _quantity(obs: Resource, factors: Mapping[str, float], problems: list[Problem]
              ) -> float | None:
    """The valueQuantity in the unit `factors` converts to, or None when unknown."""
    quantity = obs.get("valueQuantity")
    if not isinstance(quantity, Mapping):
        if any(k.startswith("value") for k in obs):
            problems.append((label(obs), "value[x]", "must be a valueQuantity"))
        return None                     # no value, or a dataAbsentReason: unknown
    if quantity.get("value") is None:
        return None
    unit = str(quantity.get("code") or quantity.get("unit") or "")
    factor = factors.get(unit) or factors.get(unit.lower())
    if factor is None:
        problems.append((label(obs), "valueQuantity.code",
                         f"unit must be one of {', '.join(u for u in factors if u.isascii())} "
                         "(UCUM)"))
        return None
    return float(quantity["value"]) * factor


def birth_weight(facts: Facts, child: Resource, problems: list[Problem]) -> int | None:
    obs = facts.find(*BIRTH_WEIGHT[:2])
    if obs is None:
        problems.append(requirement(child, BIRTH_WEIGHT, "valueQuantity in g"))
        return None
    grams = _quantity(obs, _GRAMS, problems)
    return None if grams is None else round(grams)


def gestational_age(facts: Facts, child: Resource, problems: list[Problem]) -> int | None:
    obs = facts.find(*GESTATIONAL_AGE[:2])
    if obs is None:
        problems.append(requirement(child, GESTATIONAL_AGE, "valueQuantity in wk or d"))
        return None
    weeks = _quantity(obs, _WEEKS, problems)
    return None if weeks is None else math.floor(weeks + 1e-9)   # completed weeks


def nicu_admission(facts: Facts) -> bool | None:
    """True when an Observation says the newborn was admitted, False when one says not
    (or that none of the BFDR abnormal conditions was present); otherwise unknown."""
    answer: bool | None = None
    for obs in facts.child:
        if has_code(obs.get("code"), FACTS_SYSTEM, "nicu-admission"):
            value = obs.get("valueBoolean")
            answer = value if isinstance(value, bool) else answer
        elif has_code(obs.get("code"), LOINC, "73812-0"):
            value = obs.get("valueCodeableConcept")
            if has_code(value, SNOMED, NICU_ADMITTED):
                return True
            if has_code(value, SNOMED, NO_ABNORMAL_CONDITION):
                answer = False if answer is None else answer
    return answer


def boolean(facts: Facts, code: str, mother_first: bool = False) -> bool | None:
    obs = facts.find(FACTS_SYSTEM, (code,), mother_first)
    value = (obs or {}).get("valueBoolean")
    return value if isinstance(value, bool) else None


def prenatal_visits(facts: Facts) -> int | None:
    obs = facts.find(*PRENATAL_VISITS[:2], mother_first=True)
    value = (obs or {}).get("valueInteger")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def substance_exposure(facts: Facts, problems: list[Problem]) -> str:
    obs = facts.find(FACTS_SYSTEM, ("substance-exposure",))
    if obs is None:
        return "UNKNOWN"
    code = next((c.upper().replace("-", "_") for _, c in codings(
        obs.get("valueCodeableConcept")) if c), None)
    if code is None:
        return "UNKNOWN"
    if code not in SUBSTANCES:
        problems.append((label(obs), "valueCodeableConcept",
                         f"code must be one of {', '.join(SUBSTANCES)}"))
    return code


def medicaid_covered(index: BundleIndex, facts: Facts, mothers: tuple[Resource, ...]
                     ) -> bool | None:
    """Whether Medicaid paid for the birth: the mother's Coverage, else an Observation;
    None when nothing in the bundle says."""
    answers: list[bool] = []
    for coverage in index.of_type("Coverage"):
        if coverage.get("status") not in (None, "active"):
            continue
        beneficiary = index.get(coverage.get("beneficiary"))
        if not any(beneficiary is m for m in mothers):
            continue
        for system, code in codings(coverage.get("type")):
            if system.lower().rstrip("/") in SOPT_SYSTEMS and code and code != SOPT_UNKNOWN:
                answers.append(code.startswith("2"))
                break
    if answers:
        return any(answers)
    return boolean(facts, "medicaid-covered-birth", mother_first=True)
