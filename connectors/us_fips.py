"""US state FIPS codes (FIPS 5-2 / INCITS 38), for building a county's 5-digit FIPS code
from a state and the 3-digit county code vital records write beside an address."""

from __future__ import annotations

STATE_FIPS: dict[str, str] = {
    "AL": "01", "AK": "02", "AZ": "04", "AR": "05", "CA": "06", "CO": "08", "CT": "09",
    "DE": "10", "DC": "11", "FL": "12", "GA": "13", "HI": "15", "ID": "16", "IL": "17",
    "IN": "18", "IA": "19", "KS": "20", "KY": "21", "LA": "22", "ME": "23", "MD": "24",
    "MA": "25", "MI": "26", "MN": "27", "MS": "28", "MO": "29", "MT": "30", "NE": "31",
    "NV": "32", "NH": "33", "NJ": "34", "NM": "35", "NY": "36", "NC": "37", "ND": "38",
    "OH": "39", "OK": "40", "OR": "41", "PA": "42", "RI": "44", "SC": "45", "SD": "46",
    "TN": "47", "TX": "48", "UT": "49", "VT": "50", "VA": "51", "WA": "53", "WV": "54",
    "WI": "55", "WY": "56", "AS": "60", "GU": "66", "MP": "69", "PR": "72", "VI": "78",
}


def state_fips(state: object) -> str | None:
    """The 2-digit FIPS code of a state written as its USPS abbreviation (`WI`) or as
    its FIPS code (`55`); None for anything else."""
    text = str(state or "").strip().upper()
    if text in STATE_FIPS:
        return STATE_FIPS[text]
    if text.isdigit() and text.zfill(2) in STATE_FIPS.values():
        return text.zfill(2)
    return None
