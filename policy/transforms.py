"""Field transforms: what an agreement or a rule may do to a value before release.

A transform is written in YAML as a word (`drop`, `zip3`, `pseudonymise`, `mask`) or a
one-key mapping (`{generalise: month}`, `{mask: {keep_last: 4}}`,
`{pseudonymise: {scope: shared:statewide-evaluation}}`). When several apply to one field
the most protective wins, in the fixed order drop > pseudonymise > generalise > mask >
clear (no transform).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from policy.errors import PolicyError
from schemas.catalog import FieldInfo
from schemas.jsonvalues import parse_iso_date

TransformKind = Literal["drop", "pseudonymise", "generalise", "mask"]
Granularity = Literal["month", "year", "zip3"]

RANK: dict[str, int] = {"drop": 0, "pseudonymise": 1, "generalise": 2, "mask": 3}
"""Lower is more protective; `clear` (no transform) ranks after every transform."""

_GRANULARITY_RANK = {"year": 0, "month": 1, "zip3": 2}
_ALIASES = {"generalize": "generalise", "pseudonymize": "pseudonymise"}
_WORDS = ("drop", "zip3", "pseudonymise", "mask")
DEFAULT_MASK_KEEP = 4
RECIPIENT_SCOPE = "recipient"
SHARED_PREFIX = "shared:"

_DATE_LOGICAL = frozenset({"date", "timestamp-millis", "timestamp-micros"})
_PSEUDONYMISABLE = frozenset({"string", "int", "long"})


class Transform(BaseModel):
    """One transform, normalised from its YAML spelling."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TransformKind
    granularity: Granularity | None = None
    keep_last: int | None = None
    scope: str | None = None
    """For pseudonymise: None (per recipient unless the agreement names a scope),
    `recipient`, or `shared:<name>`."""

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        return parse_transform_spec(value)

    def label(self) -> str:
        """Short human-readable form used in explanations (`generalise:month`)."""
        if self.kind == "generalise":
            return f"generalise:{self.granularity}"
        if self.kind == "mask":
            return f"mask:last{self.keep_last}"
        if self.kind == "pseudonymise" and self.scope and self.scope != RECIPIENT_SCOPE:
            return f"pseudonymise:{self.scope}"
        return self.kind


def parse_transform_spec(value: Any) -> Any:
    """Turn the YAML spellings into the model's fields; leave normalised input alone."""
    if isinstance(value, Transform):
        return value
    if isinstance(value, str):
        word = _ALIASES.get(value, value)
        if word == "zip3":
            return {"kind": "generalise", "granularity": "zip3"}
        if word == "mask":
            return {"kind": "mask", "keep_last": DEFAULT_MASK_KEEP}
        if word in ("drop", "pseudonymise"):
            return {"kind": word}
        if word == "generalise":
            raise ValueError("generalise needs a granularity: {generalise: month|year}")
        raise ValueError(f"unknown transform '{value}'; expected one of {', '.join(_WORDS)}, "
                         "{generalise: month|year}, {mask: {keep_last: N}}, "
                         "{pseudonymise: {scope: ...}}")
    if isinstance(value, dict) and "kind" in value:
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        word = _ALIASES.get(str(key), str(key))
        if word == "generalise":
            if arg not in ("month", "year", "zip3"):
                raise ValueError("generalise takes month, year or zip3")
            return {"kind": "generalise", "granularity": arg}
        if word == "mask":
            keep = arg.get("keep_last") if isinstance(arg, dict) else arg
            if isinstance(arg, dict) and set(arg) - {"keep_last"}:
                raise ValueError("mask takes only keep_last")
            if not isinstance(keep, int) or isinstance(keep, bool) or not 0 <= keep <= 32:
                raise ValueError("mask keep_last must be a whole number from 0 to 32")
            return {"kind": "mask", "keep_last": keep}
        if word == "pseudonymise":
            scope = arg.get("scope") if isinstance(arg, dict) else arg
            if isinstance(arg, dict) and set(arg) - {"scope"}:
                raise ValueError("pseudonymise takes only scope")
            _check_scope(scope)
            return {"kind": "pseudonymise", "scope": scope}
        if word in ("drop", "zip3") and arg in (None, True):
            return parse_transform_spec(word)
    raise ValueError("a transform is a word (drop, zip3, pseudonymise, mask) or a one-key "
                     "mapping such as {generalise: month}")


def _check_scope(scope: Any) -> None:
    if scope is None or scope == RECIPIENT_SCOPE:
        return
    if (isinstance(scope, str) and scope.startswith(SHARED_PREFIX)
            and len(scope) > len(SHARED_PREFIX)):
        return
    raise ValueError("pseudonymise scope is 'recipient' or 'shared:<name>'")


def applicable(transform: Transform, field: FieldInfo) -> bool:
    """Whether the transform can be applied to values of this field's type."""
    if transform.kind == "drop":
        return True
    if transform.kind == "generalise":
        if transform.granularity == "zip3":
            return field.base_type == "string" and field.logical_type != "date"
        # An ISO date held as a string is a date too (`schemas.datestrings`).
        return field.logical_type in _DATE_LOGICAL
    if transform.kind == "mask":
        return field.base_type == "string" and field.logical_type is None
    return field.base_type in _PSEUDONYMISABLE and field.logical_type is None


def applicable_to(transform: Transform) -> str:
    """Which field types a transform accepts, for error messages."""
    if transform.kind == "generalise":
        return "string fields" if transform.granularity == "zip3" else "date or timestamp fields"
    if transform.kind == "mask":
        return "string fields"
    if transform.kind == "pseudonymise":
        return "string, int or long fields"
    return "any field"


def strictest(transforms: list[Transform]) -> Transform | None:
    """The most protective of several transforms on one field (None: leave clear).

    Within generalise the coarser granularity wins, within mask the fewer characters
    kept; pseudonymise scopes that disagree fall back to per-recipient keys, which link
    nothing across recipients. A scope-less pseudonymise accepts a named scope.
    """
    if not transforms:
        return None
    best_rank = min(RANK[t.kind] for t in transforms)
    same = [t for t in transforms if RANK[t.kind] == best_rank]
    kind = same[0].kind
    if kind == "generalise":
        return min(same, key=lambda t: _GRANULARITY_RANK[t.granularity or "year"])
    if kind == "mask":
        return min(same, key=lambda t: t.keep_last or 0)
    if kind == "pseudonymise":
        scopes = {t.scope for t in same if t.scope is not None}
        scope = scopes.pop() if len(scopes) == 1 else (RECIPIENT_SCOPE if scopes else None)
        return Transform(kind="pseudonymise", scope=scope)
    return same[0]


# -- runtime ----------------------------------------------------------------------------

ValueTransform = Callable[[Any], Any]


def pseudonym_key_for(master_key: bytes, recipient: str, scope: str | None) -> bytes:
    """The HMAC key for one recipient, or for a shared scope that links named agreements."""
    if scope and scope.startswith(SHARED_PREFIX):
        label = f"handoff.pseudonym.v1|scope|{scope[len(SHARED_PREFIX):]}"
    else:
        label = f"handoff.pseudonym.v1|recipient|{recipient}"
    return hmac.digest(master_key, label.encode(), "sha256")


def pseudonymiser(key: bytes) -> ValueTransform:
    """`p_` + 32 lower-case hex digits: the first 128 bits of HMAC-SHA256(key, value).

    The HMAC's inner and outer hash states are computed once per key and copied per
    value (RFC 2104), which is several times faster than `hmac.digest` per call.
    """
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def pseudonymise(value: Any) -> str | None:
        if value is None:
            return None
        mac_inner = inner.copy()
        mac_inner.update(str(value).encode())
        mac = outer.copy()
        mac.update(mac_inner.digest())
        return "p_" + mac.digest()[:16].hex()

    return pseudonymise


def _as_date(value: Any) -> Any:
    """A date-string field's value as a date. Publishing refuses one that is not an ISO
    date; should one reach here all the same, it is withheld (None), never passed on."""
    return parse_iso_date(value) if isinstance(value, str) else value


def _month(value: Any) -> str | None:
    value = _as_date(value)
    return None if value is None else value.isoformat()[:7]


def _year(value: Any) -> str | None:
    value = _as_date(value)
    return None if value is None else f"{value.year:04d}"


def _zip3(value: Any) -> str | None:
    return None if value is None else str(value)[:3]


def _masker(keep: int) -> ValueTransform:
    def mask(value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        if len(text) <= keep:
            # Revealing "the last N" of a value no longer than N would reveal all of it.
            return "*" * len(text)
        return "*" * (len(text) - keep) + (text[-keep:] if keep else "")

    return mask


def value_transform(transform: Transform, pseudonym_key: bytes) -> ValueTransform:
    """The function applied to one value (None stays None). Not for `drop`."""
    if transform.kind == "generalise":
        return {"month": _month, "year": _year, "zip3": _zip3}[transform.granularity or "year"]
    if transform.kind == "mask":
        return _masker(transform.keep_last or 0)
    if transform.kind == "pseudonymise":
        return pseudonymiser(pseudonym_key)
    raise PolicyError(f"{transform.kind} has no value function")
