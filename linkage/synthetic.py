"""A synthetic population with realistic recording errors, and the truth about it.

`SyntheticPopulation` makes people (names from `name_tables` plus a long tail of generated
surnames, dates of birth, addresses, phones) and the records several agencies keep about
them, each agency with its own id scheme. Each record may carry the errors real agency
data has: typos, swapped given and family names, nicknames, day/month swaps and digit
transpositions in dates, a surname changed by marriage, missing fields, a move to a new
address. The truth (which person each record is about) is kept beside every record.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from bisect import bisect
from dataclasses import dataclass, replace
from itertools import accumulate

from linkage.identity import AgencyId, IdentityRecord
from linkage.name_tables import (
    FEMALE_GIVEN,
    MALE_GIVEN,
    STREET_NAMES,
    STREET_TYPES,
    SURNAMES,
)
from linkage.nicknames import FORMAL_NAMES

AGENCY_ID_SCHEMES: tuple[tuple[str, str, str], ...] = (
    ("st-marys-hospital", "mrn", "MRN{:08d}"),
    ("cps-hotline", "intake", "HL-{:07d}"),
    ("medicaid", "member", "WI-MA-{:08d}"),
    ("school-district", "student", "S{:07d}"),
    ("vital-records", "cert", "VR{:09d}"),
)
"""(agency, id system, id format): every agency numbers its people its own way."""

_ONSETS = ("b", "br", "c", "ch", "d", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p",
           "r", "s", "st", "t", "v", "w", "z", "kr", "sh", "th", "")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "y")
_CODAS = ("", "n", "r", "l", "s", "t", "m", "ck", "nd", "rt", "ll", "x", "ng")
_ENDINGS = ("son", "man", "ley", "ton", "berg", "ski", "ford", "field", "wood", "er",
            "ez", "ova", "stein", "ell", "ard", "")


@dataclass(frozen=True, slots=True)
class ErrorRates:
    """Probability of each error per record (a realistic mix, not a worst case)."""

    typo_given: float = 0.06
    typo_family: float = 0.06
    nickname: float = 0.12
    swap_names: float = 0.02
    dob_day_month_swap: float = 0.03
    dob_digit_transposition: float = 0.02
    dob_typo: float = 0.02
    married_surname: float = 0.06
    moved: float = 0.2
    missing_dob: float = 0.03
    missing_sex: float = 0.15
    missing_street: float = 0.2
    missing_zip: float = 0.1
    missing_phone: float = 0.45
    new_phone: float = 0.15
    diacritics_dropped: float = 0.5


@dataclass(frozen=True, slots=True)
class Person:
    truth_id: int
    given: str
    family: str
    dob: dt.date
    sex: str
    street: str
    zip: str
    phone: str
    married_family: str | None = None
    """A surname taken on marriage: some agencies know her by it, some by the old one."""
    moved_to: tuple[str, str] | None = None
    """A later (street, zip): some agencies have the new address, some the old."""
    new_phone: str | None = None


@dataclass(frozen=True, slots=True)
class SyntheticRecord:
    record: IdentityRecord
    truth_id: int


class _Weighted:
    def __init__(self, items: tuple[tuple[str, int], ...] | list[tuple[str, float]]) -> None:
        self.names = [n for n, _ in items]
        self.cum = list(accumulate(w for _, w in items))

    def draw(self, rng: random.Random) -> str:
        return self.names[bisect(self.cum, rng.random() * self.cum[-1])]


class SyntheticPopulation:
    """Deterministic for a given seed."""

    def __init__(self, seed: int = 7, rates: ErrorRates | None = None,
                 tail_surnames: int = 60000) -> None:
        self.rng = random.Random(seed)
        self.rates = rates or ErrorRates()
        self._female = _Weighted(FEMALE_GIVEN)
        self._male = _Weighted(MALE_GIVEN)
        self._top = _Weighted(SURNAMES)
        tail = sorted({self._made_up_surname() for _ in range(tail_surnames)})
        self.rng.shuffle(tail)
        self._tail = _Weighted([(n, 1.0 / (rank + 10)) for rank, n in enumerate(tail)])
        self._zips = [f"{53000 + self.rng.randrange(1000):05d}" for _ in range(400)]
        self._next_id = {agency: 0 for agency, _, _ in AGENCY_ID_SCHEMES}

    def _made_up_surname(self) -> str:
        rng = self.rng
        parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                 for _ in range(rng.choice((1, 1, 2)))]
        name = "".join(parts) + rng.choice(_ENDINGS)
        return name.capitalize() if len(name) > 2 else name.capitalize() + "son"

    def _surname(self) -> str:
        return self._top.draw(self.rng) if self.rng.random() < 0.3 else self._tail.draw(self.rng)

    def _address(self) -> tuple[str, str]:
        rng = self.rng
        street = (f"{rng.randrange(1, 9999)} {rng.choice(STREET_NAMES)} "
                  f"{rng.choice(STREET_TYPES)}")
        if rng.random() < 0.25:
            street += f" Apt {rng.randrange(1, 40)}"
        return street, rng.choice(self._zips)

    def _phone(self) -> str:
        area = self.rng.choice(("608", "414", "920", "715", "262"))
        return f"{area}-555-{self.rng.randrange(10000):04d}"

    def person(self, truth_id: int, sex: str | None = None,
               born_between: tuple[int, int] = (1965, 2008)) -> Person:
        rng = self.rng
        sex = sex or rng.choice(("F", "M"))
        given = (self._female if sex == "F" else self._male).draw(rng)
        start = dt.date(born_between[0], 1, 1).toordinal()
        end = dt.date(born_between[1], 12, 31).toordinal()
        street, zip_code = self._address()
        dob = dt.date.fromordinal(rng.randrange(start, end))
        r = self.rates
        married = (self._surname() if sex == "F" and dob.year < 2004
                   and rng.random() < r.married_surname * 2 else None)
        moved = None
        if rng.random() < r.moved * 2:
            new_street, new_zip = self._address()
            moved = (new_street, new_zip if rng.random() < 0.6 else zip_code)
        new_phone = self._phone() if rng.random() < r.new_phone * 2 else None
        return Person(truth_id, given, self._surname(), dob, sex, street, zip_code,
                      self._phone(), married, moved, new_phone)

    def people(self, count: int, first_id: int = 0) -> list[Person]:
        return [self.person(first_id + i) for i in range(count)]

    def agency_id(self, agency: str) -> AgencyId:
        for name, system, fmt in AGENCY_ID_SCHEMES:
            if name == agency:
                self._next_id[name] += 1
                return AgencyId(name, system, fmt.format(self._next_id[name]))
        raise ValueError(f"unknown synthetic agency {agency}")

    def observe(self, person: Person, agency: str, clean: bool = False) -> SyntheticRecord:
        """One agency's record of a person, with errors drawn at the configured rates."""
        p = person if clean else self._with_life_changes(person)
        given, family, dob = p.given, p.family, p.dob
        sex: str | None = p.sex
        street: str | None = p.street
        zip_code: str | None = p.zip
        phone: str | None = p.phone
        r = self.rates
        rng = self.rng
        if not clean:
            formal = given.lower()
            if formal in FORMAL_NAMES and rng.random() < r.nickname:
                given = rng.choice(FORMAL_NAMES[formal]).capitalize()
            if rng.random() < r.typo_given:
                given = _typo(given, rng)
            if rng.random() < r.typo_family:
                family = _typo(family, rng)
            if rng.random() < r.swap_names:
                given, family = family, given
            given, family = _case_and_accents(given, rng, r), _case_and_accents(family, rng, r)
        dob_out: dt.date | None = dob if clean else _dob_errors(dob, rng, r)
        if not clean:
            sex = None if rng.random() < r.missing_sex else sex
            street = None if rng.random() < r.missing_street else street
            zip_code = None if rng.random() < r.missing_zip else zip_code
            phone = None if rng.random() < r.missing_phone else phone
        return SyntheticRecord(IdentityRecord(
            self.agency_id(agency), given, family, dob_out, sex, street, zip_code, phone),
            person.truth_id)

    def _with_life_changes(self, person: Person) -> Person:
        rng = self.rng
        changed = person
        if person.married_family and rng.random() < 0.5:
            changed = replace(changed, family=person.married_family)
        if person.moved_to and rng.random() < 0.5:
            changed = replace(changed, street=person.moved_to[0], zip=person.moved_to[1])
        if person.new_phone and rng.random() < 0.5:
            changed = replace(changed, phone=person.new_phone)
        return changed


def _typo(name: str, rng: random.Random) -> str:
    if len(name) < 3:
        return name
    i = rng.randrange(1, len(name) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        return name[:i] + name[i + 1:]
    if kind == 1:
        return name[:i] + rng.choice(string.ascii_lowercase) + name[i:]
    if kind == 2:
        return name[:i] + rng.choice(string.ascii_lowercase) + name[i + 1:]
    return name[:i - 1] + name[i] + name[i - 1] + name[i + 1:]


def _case_and_accents(name: str, rng: random.Random, r: ErrorRates) -> str:
    if rng.random() < r.diacritics_dropped:
        name = name.translate(str.maketrans("éèëáíóúñçöüÉ", "eeeaiouncouE"))
    return name.upper() if rng.random() < 0.3 else name


def _dob_errors(dob: dt.date, rng: random.Random, r: ErrorRates) -> dt.date | None:
    if rng.random() < r.missing_dob:
        return None
    if dob.day <= 12 and dob.day != dob.month and rng.random() < r.dob_day_month_swap:
        return dt.date(dob.year, dob.day, dob.month)
    if rng.random() < r.dob_digit_transposition:
        digits = dob.strftime("%Y%m%d")
        i = rng.randrange(2, 7)
        swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2:]
        try:
            return dt.datetime.strptime(swapped, "%Y%m%d").date()
        except ValueError:
            return dob
    if rng.random() < r.dob_typo:
        return dob + dt.timedelta(days=rng.choice((-1, 1, 10, -10)))
    return dob


def linked_dataset(pop: SyntheticPopulation, people: int,
                   agencies_per_person: tuple[int, ...] = (1, 1, 2, 2, 3, 4),
                   ) -> list[SyntheticRecord]:
    """Records about `people` persons, each known to 1-4 agencies, shuffled as a stream."""
    agencies = [a for a, _, _ in AGENCY_ID_SCHEMES]
    records = []
    for person in pop.people(people):
        for agency in pop.rng.sample(agencies, pop.rng.choice(agencies_per_person)):
            records.append(pop.observe(person, agency))
    pop.rng.shuffle(records)
    return records
