"""Identity records the linkage tests share: one mother as several agencies know her."""

from __future__ import annotations

import datetime as dt

from linkage.identity import AgencyId, IdentityRecord

DOB = dt.date(1995, 5, 14)


def hospital(mrn: str = "MRN0048213", **changes: object) -> IdentityRecord:
    fields: dict[str, object] = dict(
        given_name="Jolene", family_name="Lindqvist", birth_date=DOB, sex="FEMALE",
        street_address="418 Larkspur Court Apt 2", zip="53703", phone="608-555-0142")
    fields.update(changes)
    return IdentityRecord(AgencyId("st-marys-hospital", "mrn", mrn), **fields)  # type: ignore[arg-type]


def hotline(intake: str = "HL-2026-118204", **changes: object) -> IdentityRecord:
    fields: dict[str, object] = dict(
        given_name="JOLENE", family_name="LINDQVIST", birth_date=DOB, sex=None,
        street_address="418 Larkspur Ct., Apt 2", zip="53703-1120", phone="(608) 555-0142")
    fields.update(changes)
    return IdentityRecord(AgencyId("cps-hotline", "intake", intake), **fields)  # type: ignore[arg-type]


def stranger(member: str = "WI-MA-1", **changes: object) -> IdentityRecord:
    fields: dict[str, object] = dict(
        given_name="Marcus", family_name="Oyelaran", birth_date=dt.date(1988, 11, 2),
        sex="MALE", zip="53218")
    fields.update(changes)
    return IdentityRecord(AgencyId("medicaid", "member", member), **fields)  # type: ignore[arg-type]
