"""Which FHIR `Identifier` may name a person in an event, and which is a Social Security
number that never may.

A US Social Security number is written in many ways by real systems. Each of these is an
SSN here, whatever the case of its letters and with or without a trailing slash:

- `system` `http://hl7.org/fhir/sid/us-ssn` (also with `https`), or the SSA's OID
  `urn:oid:2.16.840.1.113883.4.1` (also written bare, `2.16.840.1.113883.4.1`);
- `type` coded `SS` ("Social Security number", HL7 v2 table 0203, under its
  `terminology.hl7.org` or older `hl7.org/fhir/v2/0203` system, its OID, or no system),
  or `SSN`; or a `type.text` that says "social security";
- a `value` written as an SSN (`123-45-6789`), whatever the system says.

An SSN can fill `mother.ssn` (which policy withholds from nearly everyone); it is never a
`subject_id`, `child_id` or any other identifier of an event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SSN_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/us-ssn", "urn:oid:2.16.840.1.113883.4.1"})
V2_0203_SYSTEMS = frozenset({
    "http://terminology.hl7.org/codesystem/v2-0203", "http://hl7.org/fhir/v2/0203",
    "urn:oid:2.16.840.1.113883.18.108"})
SSN_TYPE_CODES = frozenset({"SS", "SSN"})
_SSN_WRITTEN = re.compile(r"^\s*\d{3}-\d{2}-\d{4}\s*$")
_USE_ORDER = {"official": 0, "usual": 1, None: 2, "secondary": 3, "temp": 4}
"""Identifier.use, most to least preferred; `old` identifiers are never chosen."""


def _system(raw: Any) -> str:
    text = str(raw or "").strip().lower().rstrip("/")
    if text.startswith("https://"):
        text = "http://" + text.removeprefix("https://")
    if re.fullmatch(r"[0-9]+(\.[0-9]+)+", text):
        text = f"urn:oid:{text}"
    return text


def is_ssn(identifier: Mapping[str, Any]) -> bool:
    """True when the identifier is a Social Security number in any spelling above."""
    if _system(identifier.get("system")) in SSN_SYSTEMS:
        return True
    kind = identifier.get("type") or {}
    for coding in kind.get("coding") or []:
        code = str(coding.get("code") or "").strip().upper()
        system = _system(coding.get("system"))
        if code in SSN_TYPE_CODES and (not system or system in V2_0203_SYSTEMS):
            return True
    if "social security" in str(kind.get("text") or "").lower():
        return True
    return bool(_SSN_WRITTEN.match(str(identifier.get("value") or "")))


def _candidates(resource: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    found = [i for i in (resource or {}).get("identifier") or []
             if isinstance(i, Mapping) and i.get("value") and i.get("use") != "old"]
    return sorted(found, key=lambda i: _USE_ORDER.get(i.get("use"), 5))


def record_id(resource: Mapping[str, Any] | None) -> str | None:
    """The identifier to name this person (or record) by: the first that is not an SSN,
    `official` and `usual` ones first, `old` ones never."""
    return next((str(i["value"]) for i in _candidates(resource) if not is_ssn(i)), None)


def ssn(resource: Mapping[str, Any] | None) -> str | None:
    """The person's Social Security number, when an identifier carries one."""
    return next((str(i["value"]) for i in _candidates(resource) if is_ssn(i)), None)


def typed_id(resource: Mapping[str, Any] | None, type_code: str) -> str | None:
    """The value of the identifier coded `type_code` (v2 table 0203, e.g. `MA`, the
    Medicaid number), never an SSN."""
    for ident in _candidates(resource):
        codes = {str(c.get("code") or "").upper()
                 for c in (ident.get("type") or {}).get("coding") or []}
        if type_code in codes and not is_ssn(ident):
            return str(ident["value"])
    return None


def only_ssn(resource: Mapping[str, Any] | None) -> bool:
    """True when the resource has identifiers and every one of them is an SSN."""
    found = _candidates(resource)
    return bool(found) and all(is_ssn(i) for i in found)


SSN_ONLY = ("only a Social Security number identifies this person, and an SSN is never "
            "used as an identifier in events: add an identifier of another kind (an MRN "
            "or the state's client identifier)")
NO_ID = "required: an identifier (an MRN or the state's client identifier; not an SSN)"


def missing_id_message(resource: Mapping[str, Any] | None) -> str:
    """What to say when `record_id` found nothing (never the values)."""
    return SSN_ONLY if only_ssn(resource) else NO_ID
