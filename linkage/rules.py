"""Deterministic rules, applied before the probabilistic model.

1. A record key (agency, id system, id value) seen before belongs to the person it was
   linked to: an agency's own id is the strongest evidence there is (the resolver applies
   this one, as a lookup).
2. Exact normalised given name, family name and date of birth, all present, with no
   conflicting sex, is the same person, provided exactly one person in the index matches;
   more than one goes to review.
"""

from __future__ import annotations

from linkage.identity import NormalisedIdentity


def exact_name_and_dob(left: NormalisedIdentity, right: NormalisedIdentity) -> bool:
    """Rule 2 for one pair."""
    if left.given is None or left.family is None or left.dob is None:
        return False
    if (left.given, left.family, left.dob) != (right.given, right.family, right.dob):
        return False
    return left.sex is None or right.sex is None or left.sex == right.sex
