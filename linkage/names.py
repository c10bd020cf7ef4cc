"""Normalising names and addresses so that spelling conventions do not look like errors.

Case, diacritics, punctuation, spacing and generational suffixes are removed; nicknames
are mapped to a formal form separately (see `nicknames`), because "Bill" and "William"
are evidence of a match but weaker evidence than "William" and "William".
"""

from __future__ import annotations

import re
import unicodedata

_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "2nd", "3rd"})
_NOT_LETTER = re.compile(r"[^a-z ]+")
_SPACES = re.compile(r"\s+")

_STREET_WORDS = {
    "street": "st", "avenue": "ave", "av": "ave", "road": "rd", "drive": "dr",
    "lane": "ln", "court": "ct", "boulevard": "blvd", "place": "pl", "terrace": "ter",
    "circle": "cir", "highway": "hwy", "parkway": "pkwy", "apartment": "apt",
    "suite": "ste", "unit": "apt", "north": "n", "south": "s", "east": "e", "west": "w",
    "#": "apt",
}
_STREET_TOKEN = re.compile(r"[a-z0-9]+|#")


def ascii_fold(text: str) -> str:
    """Lower case with diacritics removed: "Peña" -> "pena", "Zoë" -> "zoe"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def normalise_name(raw: str | None) -> str | None:
    """A name as comparable letters: folded, no punctuation, spaces or suffixes.

    "O'Brien-Smith Jr." -> "obriensmith"; "de la Cruz" -> "delacruz". None or a name
    with no letters gives None (missing, not empty: comparisons treat it as unknown).
    """
    if raw is None:
        return None
    words = _SPACES.split(_NOT_LETTER.sub(" ", ascii_fold(raw).replace("'", "")).strip())
    kept = [w for w in words if w and w not in _SUFFIXES]
    joined = "".join(kept)
    return joined or None


def normalise_street(raw: str | None) -> str | None:
    """A street address in one spelling: "418 Larkspur Court, Apt. 2" -> "418 larkspur ct apt 2"."""
    if raw is None:
        return None
    tokens = [_STREET_WORDS.get(t, t) for t in _STREET_TOKEN.findall(ascii_fold(raw))]
    return " ".join(tokens) or None


def normalise_phone(raw: str | None) -> str | None:
    """Ten US digits, or None: "(608) 555-0142" and "+1 608 555 0142" -> "6085550142"."""
    if raw is None:
        return None
    digits = "".join(c for c in raw if c.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) == 10 else None


def normalise_zip(raw: str | None) -> str | None:
    """The five-digit ZIP code, or None."""
    if raw is None:
        return None
    digits = "".join(c for c in raw if c.isdigit())[:5]
    return digits if len(digits) == 5 else None


_SOUNDEX_CODES = {
    **dict.fromkeys("bfpv", "1"), **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"), "l": "4", **dict.fromkeys("mn", "5"), "r": "6",
}


def soundex(name: str) -> str:
    """American Soundex of a normalised name ("robert" -> "r163"), "" for an empty name."""
    if not name:
        return ""
    first = name[0]
    codes = [first]
    previous = _SOUNDEX_CODES.get(first, "")
    for char in name[1:]:
        code = _SOUNDEX_CODES.get(char, "")
        if code and code != previous:
            codes.append(code)
            if len(codes) == 4:
                break
        if char not in "hw":  # h and w do not separate letters with the same code
            previous = code
    return "".join(codes).ljust(4, "0")
