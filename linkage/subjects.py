"""Which fields of an event identify which person: the per-event-type linkage mapping.

The policy bundle names, per event type, the people an event is about (`role`), where each
one's agency id is (`id_field`, under the publishing agency and an `id_system`), and
which event fields are identifying (`fields`: identity field -> dotted path in the event).
`identity_from_event` applies one mapping to a decoded event, so the router can resolve
each subject to a Handoff person id before policy runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from linkage.errors import IdentityError
from linkage.identity import AgencyId, IdentityRecord

IDENTITY_INPUTS = ("given_name", "family_name", "birth_date", "sex", "street_address", "zip",
                   "phone")
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class SubjectMapping:
    role: str
    """Who in the event (`mother`, `child`, `caregiver`)."""
    id_system: str
    id_field: str
    """Dotted path of the agency's id for this person (e.g. `subject_id`)."""
    fields: tuple[tuple[str, str], ...]
    """(identity input, dotted path) pairs; identity inputs from `IDENTITY_INPUTS`."""
    sex: str | None = None
    """A constant sex when the role implies it (a birth mother)."""
    keys_event: bool = False
    """Whether this person's id replaces the event's `subject_id` for policy and audit."""

    split_fields: tuple[tuple[str, tuple[str, ...]], ...] = field(
        init=False, repr=False, compare=False)
    """`fields` with each path split at its dots, once."""

    def __post_init__(self) -> None:
        unknown = [name for name, _ in self.fields if name not in IDENTITY_INPUTS]
        if unknown:
            raise IdentityError(f"linkage mapping for {self.role} names unknown identity "
                                f"fields {', '.join(unknown)}; known: "
                                f"{', '.join(IDENTITY_INPUTS)}")
        object.__setattr__(self, "split_fields", tuple(
            (name, tuple(path.split("."))) for name, path in self.fields))


def value_at(event: Mapping[str, object], path: str) -> object:
    """The value at a dotted path of a decoded event, or None where any step is missing
    or not a mapping. Decoded events are dicts: they are checked for first, since an
    `isinstance(…, Mapping)` check costs ten times as much and this runs several times
    for every subject of every event."""
    return _value_at_parts(event, path.split("."))


def _value_at_parts(event: Mapping[str, object], parts: Sequence[str]) -> object:
    value: object = event
    for part in parts:
        if type(value) is dict or isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return value


def _as_date(value: object, role: str) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int):  # Avro `date`: days since the epoch
        return _EPOCH + dt.timedelta(days=value)
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise IdentityError(f"birth_date of {role} is not an ISO date") from exc
    raise IdentityError(f"birth_date of {role} has an unusable type")


def identity_from_event(event: Mapping[str, object], agency: str,
                        mapping: SubjectMapping, agency_id: AgencyId | None = None
                        ) -> IdentityRecord:
    """The identity record of one subject of a decoded event published by `agency`.

    `agency_id`: the subject's `AgencyId`, when the caller has already read it from this
    event (`agency`, `mapping.id_system` and the value at `mapping.id_field`)."""
    if agency_id is None:
        agency_value = value_at(event, mapping.id_field)
        if agency_value is None or agency_value == "":
            raise IdentityError(
                f"the {mapping.role}'s agency id ({mapping.id_field}) is missing")
        agency_id = AgencyId(agency, mapping.id_system, str(agency_value))
    return identity_from_values(identity_values(event, mapping), agency_id, mapping)


def identity_values(event: Mapping[str, object], mapping: SubjectMapping
                    ) -> tuple[object, ...]:
    """The values at the mapping's identifying paths, as the event holds them, in the
    order of `mapping.split_fields`: what `identity_from_values` makes a record of."""
    return tuple([_value_at_parts(event, parts) for _name, parts in mapping.split_fields])


def identity_from_values(values: Sequence[object], agency_id: AgencyId,
                         mapping: SubjectMapping) -> IdentityRecord:
    """The identity record `identity_from_event` makes of what `identity_values` read."""
    text: dict[str, str | None] = {}
    birth_date: object = None
    for (name, _parts), value in zip(mapping.split_fields, values, strict=True):
        if name == "birth_date":
            birth_date = value
        else:
            text[name] = None if value is None else str(value)
    sex = text.pop("sex", None)
    return IdentityRecord(agency_id, birth_date=_as_date(birth_date, mapping.role),
                          sex=mapping.sex or sex, **text)
