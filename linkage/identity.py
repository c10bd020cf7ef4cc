"""Identity records: what an agency says about who a person is, as sent and normalised.

An `IdentityRecord` is one agency's view (its own id for the person plus the identifying
fields the bundle names for the event type). `normalise` turns it into the
`NormalisedIdentity` the index stores and the scorer compares: spelling conventions
removed, nicknames resolved to a formal form kept beside the name as written.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache

from linkage.errors import IdentityError
from linkage.names import (
    normalise_name,
    normalise_phone,
    normalise_street,
    normalise_zip,
)
from linkage.nicknames import formal_given_name

_ID_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_CHECKED_PARTS: set[tuple[str, str]] = set()
"""(agency, system) pairs that passed `_ID_PART`; emptied when it reaches its cap."""
_CHECKED_PARTS_KEPT = 1024


@dataclass(frozen=True, slots=True)
class AgencyId:
    """An agency's own identifier for a person: it stays with the agency that issued it."""

    agency: str
    """The agency's id in the policy bundle (e.g. `st-marys-hospital`)."""
    system: str
    """Which of the agency's numbering schemes (e.g. `mrn`, `intake`, `member`)."""
    value: str

    def __post_init__(self) -> None:
        # An agency and numbering scheme come from the bundle, a few pairs over and over:
        # each pair is checked once. The value is the event's, checked every time.
        if (self.agency, self.system) not in _CHECKED_PARTS:
            for name in ("agency", "system"):
                if not _ID_PART.match(getattr(self, name)):
                    raise IdentityError(f"agency id {name} must be 1-64 letters, digits "
                                        f"or '_.:-', starting with a letter or digit")
            if len(_CHECKED_PARTS) >= _CHECKED_PARTS_KEPT:
                _CHECKED_PARTS.clear()
            _CHECKED_PARTS.add((self.agency, self.system))
        if not self.value or len(self.value) > 128 or "|" in self.value:
            raise IdentityError("agency id value must be 1-128 characters without '|'")

    @property
    def key(self) -> str:
        """The record key in the person index: `agency|system|value`."""
        return f"{self.agency}|{self.system}|{self.value}"


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """The identifying fields of one agency's record of a person, as sent."""

    agency_id: AgencyId
    given_name: str | None = None
    family_name: str | None = None
    birth_date: dt.date | None = None
    sex: str | None = None
    """FEMALE/MALE (or F/M); anything else counts as unknown."""
    street_address: str | None = None
    zip: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class NormalisedIdentity:
    """Comparable identifying values. Missing values are None, never ""."""

    given: str | None
    given_formal: str | None
    """The formal form of `given` ("bill" -> "william"); equal to `given` if none known."""
    family: str | None
    dob: str | None
    """Date of birth as YYYYMMDD: string comparisons catch digit and day/month swaps."""
    sex: str | None
    """"f", "m" or None."""
    street: str | None
    zip: str | None
    phone: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in IDENTITY_FIELDS}

    @classmethod
    def from_dict(cls, values: dict[str, str | None]) -> NormalisedIdentity:
        unknown = set(values) - set(IDENTITY_FIELDS)
        if unknown:
            raise IdentityError(f"unknown identity fields: {', '.join(sorted(unknown))}")
        return cls(**{name: values.get(name) for name in IDENTITY_FIELDS})


IDENTITY_FIELDS: tuple[str, ...] = (
    "given", "given_formal", "family", "dob", "sex", "street", "zip", "phone",
)

_SEXES = {"f": "f", "female": "f", "m": "m", "male": "m"}
MIN_FIELDS = 2
"""An identity must carry a name and at least one more identifying field."""


@lru_cache(maxsize=8192)
def normalise(record: IdentityRecord) -> NormalisedIdentity:
    """Normalise an identity record; raise IdentityError if too little is left to match on.

    Records and identities are immutable values and the rules are fixed, so the most
    recent 8,192 results are kept: most events are about people seen before, sent as
    before, and normalising names and addresses is most of what linking a known record
    costs. (Refusals are not kept; they are worked out again.)"""
    given = normalise_name(record.given_name)
    family = normalise_name(record.family_name)
    identity = NormalisedIdentity(
        given=given,
        given_formal=formal_given_name(given) if given else None,
        family=family,
        dob=record.birth_date.strftime("%Y%m%d") if record.birth_date else None,
        sex=_SEXES.get((record.sex or "").strip().lower()),
        street=normalise_street(record.street_address),
        zip=normalise_zip(record.zip),
        phone=normalise_phone(record.phone),
    )
    check_usable(identity, record.agency_id.agency)
    return identity


def check_usable(identity: NormalisedIdentity, agency: str) -> None:
    """Raise IdentityError unless the identity has a name and another identifying field."""
    if identity.given is None and identity.family is None:
        raise IdentityError(f"identity record from {agency} has no usable name "
                            f"(given_name and family_name are both missing)")
    present = [f for f in ("given", "family", "dob", "street", "zip", "phone")
               if getattr(identity, f) is not None]
    if len(present) < MIN_FIELDS:
        raise IdentityError(f"identity record from {agency} carries too few identifying "
                            f"fields (has {', '.join(present)}; needs {MIN_FIELDS})")


def key_parts(key: str) -> tuple[str, str, str]:
    """A record key (`AgencyId.key`) split back into agency, system and value, without
    checking them again (they were checked when the key was made)."""
    agency, system, value = key.split("|", 2)
    return agency, system, value

