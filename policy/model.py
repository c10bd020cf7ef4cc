"""The policy bundle's entries as validated data: agencies, agreements, rules, subscriptions.

These pydantic models check each entry on its own (types, unknown keys, spelling); the
loader then checks how entries refer to each other and to the event schemas.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from policy.transforms import Transform
from policy.vocabulary import AGENCY_KINDS, ANY_HOLDER, ANY_PERSONAL_TAG, KIND_PREFIX
from schemas.tags import TAGS

IDENTIFIER_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
FIELD_PATH_PATTERN = rf"^{_NAME}(\.{_NAME})*$"

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
"""Ids of agencies, agreements, subscriptions and rules: lower case, digits, `-_.`."""
Purpose = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
FieldPath = Annotated[str, StringConstraints(pattern=FIELD_PATH_PATTERN)]
FilterValue = str | int | float | bool | None


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_tags(tags: tuple[str, ...], allow_any: bool) -> tuple[str, ...]:
    allowed = TAGS | ({ANY_PERSONAL_TAG} if allow_any else set())
    unknown = [t for t in tags if t not in allowed]
    if unknown:
        raise ValueError(f"unknown data category {', '.join(map(repr, unknown))}; "
                         f"allowed: {', '.join(sorted(allowed))}")
    return tags


# -- agencies ----------------------------------------------------------------------------


def check_agency_token(token: str) -> str:
    """An agency id, `kind:<known kind>`, or `*` (whoever holds the data)."""
    if token == ANY_HOLDER:
        return token
    if token.startswith(KIND_PREFIX):
        kind = token[len(KIND_PREFIX):]
        if kind not in AGENCY_KINDS:
            raise ValueError(f"unknown agency kind '{kind}'; known kinds: "
                             f"{', '.join(sorted(AGENCY_KINDS))}")
        return token
    if not re.fullmatch(IDENTIFIER_PATTERN, token):
        raise ValueError(f"'{token}' is not an agency id, kind:<agency kind> or '*'")
    return token


class ConsentAuthority(_Entry):
    """Who may record consents that open an agency's data, as the agency's entry says."""

    records_for: tuple[str, ...] = ()
    """Disclosers, besides itself, this agency may name in a consent it records: agency
    ids, `kind:<kind>`, or `*` for any holder (a recipient recording an authorization
    that names the discloser, as 45 CFR 164.508(c)(1)(ii) allows)."""
    relies_on: tuple[str, ...] = ()
    """Agencies, besides itself, whose recorded consents open this agency's data: agency
    ids, `kind:<kind>`, or `*` for any agency allowed to record for it."""

    @field_validator("records_for", "relies_on")
    @classmethod
    def _tokens(cls, tokens: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_agency_token(t) for t in tokens)


class Agency(_Entry):
    """An agency that publishes or receives events."""

    id: Identifier
    name: str
    kind: str
    regimes: tuple[str, ...] = ()
    """Rule packs (regimes) its data is covered by: hipaa, ferpa, cfr42_part2, capta..."""
    publishes: tuple[str, ...] = ()
    """Event types it publishes."""
    consents: ConsentAuthority = ConsentAuthority()
    """Whose consents it records, and whose recorded consents it relies on as discloser;
    by default only its own, for its own data."""
    description: str | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in AGENCY_KINDS:
            raise ValueError(f"unknown agency kind '{kind}'; known kinds: "
                             f"{', '.join(sorted(AGENCY_KINDS))}")
        return kind


class AgenciesFile(_Entry):
    agencies: tuple[Agency, ...]


# -- agreements --------------------------------------------------------------------------


ALL_EVENT_TYPES = "*"


class FieldGrant(_Entry):
    """One allowed field of an agreement, with the transform the agreement asks for."""

    path: FieldPath
    transform: Transform | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"path": value}
        if isinstance(value, dict) and len(value) == 1 and "path" not in value:
            ((path, transform),) = value.items()
            return {"path": path, "transform": transform}
        if isinstance(value, dict) and "path" in value:
            return value
        raise ValueError("a field is a dotted path, or '<path>: <transform>'")


class Agreement(_Entry):
    """A data sharing agreement: who may send what to whom, for which purpose, until when."""

    id: Identifier
    source: Identifier
    recipient: Identifier
    purpose: Purpose
    event_types: tuple[str, ...] = Field(min_length=1)
    fields: dict[str, tuple[FieldGrant, ...]]
    """Allowed fields per event type; a plain list in YAML is stored under `*` (every
    event type of the agreement)."""
    consent_required: bool = False
    scope: Literal["field", "record"] = "field"
    effective: dt.date
    expires: dt.date | None = None
    """Last day the agreement is in force (inclusive); None for open-ended."""
    description: str | None = None
    reference: str | None = None
    """Where the signed agreement is kept (document id, URL)."""

    @field_validator("fields", mode="before")
    @classmethod
    def _list_for_every_type(cls, value: Any) -> Any:
        return {ALL_EVENT_TYPES: value} if isinstance(value, list | tuple) else value

    @model_validator(mode="after")
    def _dates_in_order(self) -> Agreement:
        if self.expires is not None and self.expires < self.effective:
            raise ValueError("expires is before effective")
        return self

    def grants_for(self, event_type: str) -> tuple[FieldGrant, ...]:
        """The allowed fields for one event type."""
        found = self.fields.get(event_type)
        return found if found is not None else self.fields.get(ALL_EVENT_TYPES, ())

    @property
    def effective_ms(self) -> int:
        return _day_start_ms(self.effective)

    @property
    def expires_ms(self) -> int | None:
        """First instant the agreement is no longer in force (the day after `expires`)."""
        if self.expires is None:
            return None
        return _day_start_ms(self.expires + dt.timedelta(days=1))


def _day_start_ms(day: dt.date) -> int:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return int(start.timestamp() * 1000)


class AgreementsFile(_Entry):
    agreements: tuple[Agreement, ...]


# -- rule packs --------------------------------------------------------------------------


class RuleMatch(_Entry):
    """Which fields a rule applies to, and when."""

    tags: tuple[str, ...] = ()
    """Data categories; `*` is any personal category. A field matches if it has one."""
    fields: tuple[FieldPath, ...] = ()
    """Dotted field paths, in any event type that has them."""
    purposes: tuple[Purpose, ...] | None = None
    """Only when the agreement's purpose is one of these."""
    unless_purposes: tuple[Purpose, ...] = ()
    """Not when the agreement's purpose is one of these (listed exceptions)."""
    recipient_kinds: tuple[str, ...] | None = None
    source: Literal["covered", "any"] = "covered"
    """`covered`: only data from agencies covered by this pack's regime; `any`: all data."""

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        return _check_tags(tags, allow_any=True)

    @field_validator("recipient_kinds")
    @classmethod
    def _kinds(cls, kinds: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = [k for k in kinds or () if k not in AGENCY_KINDS]
        if unknown:
            raise ValueError(f"unknown agency kind {', '.join(map(repr, unknown))}")
        return kinds

    @model_validator(mode="after")
    def _something_to_match(self) -> RuleMatch:
        if not self.tags and not self.fields:
            raise ValueError("a rule must match by tags or by fields")
        return self


class Requirement(_Entry):
    """What a rule demands of the fields it matches (its `then`)."""

    effect: Literal["permit", "deny", "require_consent", "permit_purposes", "transform"]
    naming: Literal["recipient", "recipient_or_kind"] = "recipient_or_kind"
    """For require_consent: whether a consent naming the recipient's kind (a class of
    recipients, `kind:<kind>`) is enough."""
    disclosers: Literal["source", "source_or_kind", "any_holder"] = "source_or_kind"
    """For require_consent: whom the consent must name as discloser: the source agency
    itself, the source or its kind (a class), or also `*` (any holder of the data)."""
    categories: tuple[str, ...] | None = None
    """For require_consent: categories the consent must cover; None: the field's
    categories this rule matched."""
    identifiers_with: tuple[str, ...] | None = None
    """For require_consent: a consent covering these categories also covers the field's
    identifier categories (the record's identity travels with its facts); it must still
    cover the field's other categories."""
    purposes: tuple[Purpose, ...] = ()
    """For permit_purposes: the only purposes allowed."""
    transform: Transform | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value in ("permit", "deny", "require_consent"):
                return {"effect": value}
            raise ValueError(f"unknown requirement '{value}'; expected permit, deny, "
                             "require_consent, {permit_purposes: [...]} or {transform: ...}")
        if isinstance(value, dict) and len(value) == 1 and "effect" not in value:
            ((key, arg),) = value.items()
            if key == "require_consent":
                return {"effect": key, **(arg or {})} if isinstance(arg, dict) or arg is None \
                    else _bad_arg(key)
            if key == "permit_purposes":
                return {"effect": key, "purposes": arg}
            if key == "transform":
                return {"effect": key, "transform": arg}
            raise ValueError(f"unknown requirement '{key}'")
        return value

    @field_validator("categories", "identifiers_with")
    @classmethod
    def _categories(cls, cats: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if cats is None else _check_tags(cats, allow_any=True)

    @model_validator(mode="after")
    def _complete(self) -> Requirement:
        if self.effect == "permit_purposes" and not self.purposes:
            raise ValueError("permit_purposes needs at least one purpose")
        if self.effect == "transform" and self.transform is None:
            raise ValueError("transform needs a transform")
        return self


def _bad_arg(key: str) -> Any:
    raise ValueError(f"{key} takes a mapping (naming, disclosers, categories, "
                     "identifiers_with)")


class Obligation(_Entry):
    """Something the recipient must be told or must do when data is disclosed."""

    id: Identifier
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "text": self.text}


class Rule(_Entry):
    """One provision of a regime, modelled: when a field matches, what it requires."""

    id: Identifier
    citation: str
    """The provision it models, on one line."""
    description: str | None = None
    when: RuleMatch
    then: Requirement
    obligations: tuple[Obligation, ...] = ()

    @field_validator("citation")
    @classmethod
    def _one_line(cls, citation: str) -> str:
        if "\n" in citation.strip() or not citation.strip():
            raise ValueError("citation must be one non-empty line")
        return citation.strip()


class RulePack(_Entry):
    """The rules of one regime (hipaa, ferpa, cfr42_part2, capta, or a state pack)."""

    regime: Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    title: str
    notice: str
    """Says the pack is an editable default, not legal advice."""
    rules: tuple[Rule, ...]


# -- subscriptions ---------------------------------------------------------------------


class Delivery(_Entry):
    """How a subscriber receives its events."""

    mode: Literal["pull", "stream", "webhook"]
    url: str | None = None
    format: Literal["json", "fhir-task"] = "json"
    """Webhooks only: `json`, the delivery as the pull API returns it; `fhir-task`, a
    referral status as an SDOHCC FHIR Task (`referral_status` subscriptions)."""

    @model_validator(mode="before")
    @classmethod
    def _from_word(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _url_for_webhooks(self) -> Delivery:
        if self.mode == "webhook" and not self.url:
            raise ValueError("webhook delivery needs a url")
        if self.mode == "webhook" and not str(self.url).startswith(("https://", "http://")):
            raise ValueError("webhook url must be http(s)")
        if self.mode != "webhook" and self.url:
            raise ValueError(f"{self.mode} delivery takes no url")
        if self.mode != "webhook" and self.format != "json":
            raise ValueError(f"format {self.format} is for webhook delivery")
        return self


class Subscription(_Entry):
    """An agency's standing request to receive events of some types for one purpose."""

    id: Identifier
    agency: Identifier
    event_types: tuple[str, ...] = Field(min_length=1)
    purpose: Purpose
    filter: dict[FieldPath, FilterValue | list[FilterValue]] = Field(default_factory=dict)
    """Equality (or one-of, for a list) on record fields; all must hold."""
    sources: tuple[Identifier, ...] | None = None
    """Only events from these agencies; None: from any agency."""
    delivery: Delivery = Delivery(mode="pull")
    description: str | None = None


class SubscriptionsFile(_Entry):
    subscriptions: tuple[Subscription, ...]
