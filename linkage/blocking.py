"""Blocking keys: which indexed records are worth scoring against an incoming one.

Each key kind tolerates a different kind of error, so a true match is missed only if it
breaks every key at once:

| kind | built from | survives |
|---|---|---|
| `n` | soundex of both names (either order), birth year | name typos and swaps |
| `d` | birth date (day, month unordered), given initial | a changed surname |
| `f` | birth date (day, month unordered), family soundex | a changed given name |
| `z` | soundex of both names (either order), ZIP | any birth date error |
| `p` | phone number | everything else changing |

Given names are taken in their formal form (Bill -> William) in every key.

The same keys are the blocking rules Splink trains and predicts with (one column per kind),
so the stream and the batch model see the same candidate pairs.
"""

from __future__ import annotations

from linkage.identity import NormalisedIdentity
from linkage.names import soundex

BLOCKING_KINDS: tuple[str, ...] = ("n", "d", "f", "z", "p")


def _name_pair(identity: NormalisedIdentity) -> str | None:
    if identity.given_formal is None or identity.family is None:
        return None
    first, second = sorted((soundex(identity.given_formal), soundex(identity.family)))
    return f"{first}{second}"


def _unordered_dob(dob: str | None) -> str | None:
    if dob is None:
        return None
    low, high = sorted((dob[4:6], dob[6:8]))
    return f"{dob[:4]}{low}{high}"


def blocking_key_columns(identity: NormalisedIdentity) -> dict[str, str | None]:
    """Each key kind's value (None where a component is missing), by kind."""
    names = _name_pair(identity)
    dob = _unordered_dob(identity.dob)
    return {
        "n": f"{names}{identity.dob[:4]}" if names and identity.dob else None,
        "d": f"{dob}{identity.given_formal[0]}" if dob and identity.given_formal else None,
        "f": f"{dob}{soundex(identity.family)}" if dob and identity.family else None,
        "z": f"{names}{identity.zip}" if names and identity.zip else None,
        "p": identity.phone,
    }


def blocking_keys(identity: NormalisedIdentity) -> tuple[str, ...]:
    """The identity's blocking keys as `kind:value` strings (missing components skipped)."""
    return tuple(f"{kind}:{value}" for kind, value in blocking_key_columns(identity).items()
                 if value is not None)
