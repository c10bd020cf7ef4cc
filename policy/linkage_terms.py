"""Record linkage terms: the bundle's optional `linkage.yaml`.

Which people each event type is about and which of its fields identify them, the match
thresholds, birth match, and the agreements under which agencies send privacy-preserving
encodings (CLKs) instead of identifiers. The broker turns each `LinkageSubject` into the
linkage library's `SubjectMapping` (the names of `IdentityInput` are the library's
identity inputs; a unit test holds the two lists equal).

These models check the file on its own; `policy.linkage_checks` checks how it refers to
agencies, agreements, subscriptions and the event schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from policy.model import FIELD_PATH_PATTERN, IDENTIFIER_PATTERN, NAME_PATTERN

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
FieldPath = Annotated[str, StringConstraints(pattern=FIELD_PATH_PATTERN)]
RoleName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
IdSystem = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
IdentityInput = Literal["given_name", "family_name", "birth_date", "sex", "street_address",
                        "zip", "phone"]
IDENTITY_INPUTS: tuple[str, ...] = ("given_name", "family_name", "birth_date", "sex",
                                    "street_address", "zip", "phone")

WATCH_LIST_EVENT_TYPE = "watch_list_entry"
"""Child welfare's restricted list of parents: goes to the linker, never to a recipient."""
BIRTH_MATCH_EVENT_TYPE = "birth_match"
"""What a match produces: routed to the watch list's owner under its agreement."""
BROKER_MADE_EVENT_TYPES = frozenset({BIRTH_MATCH_EVENT_TYPE})
"""Event types the broker makes and no agency may publish."""
BIRTH_EVENT_TYPE = "birth"
DEFAULT_ID_SYSTEM = "subject"
"""The numbering scheme of an agency's `subject_id`, unless a subject names another.
Keep one name per scheme across event types: the record key `agency|system|value` of
a consent must equal the record key of the events it governs."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _probability(value: float, name: str) -> float:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a probability strictly between 0 and 1")
    return value


class MatchThresholds(_Entry):
    """Probabilities at and above which a pair links, or goes to clerical review."""

    link_probability: float = 0.99
    review_probability: float = 0.5

    @model_validator(mode="after")
    def _ordered(self) -> MatchThresholds:
        _probability(self.link_probability, "link_probability")
        _probability(self.review_probability, "review_probability")
        if self.review_probability > self.link_probability:
            raise ValueError("review_probability must not be above link_probability")
        return self


class LinkageSubject(_Entry):
    """One person an event is about, and where the event says who they are."""

    role: RoleName
    """Who in the event: `mother`, `child`, `caregiver`, `subject`."""
    id_field: FieldPath = "subject_id"
    """Dotted path of the publishing agency's own id for this person."""
    id_system: IdSystem = DEFAULT_ID_SYSTEM
    """Which of the agency's numbering schemes `id_field` holds."""
    keys_event: bool = False
    """This person's Handoff person id keys the event: consents are matched, the audit
    subject named and `subject_id` pseudonymised by it. Its `id_field` is `subject_id`."""
    fields: dict[IdentityInput, FieldPath] = Field(default_factory=dict)
    """Identity input -> dotted path in the event. None: the subject is only looked up
    by its agency id (a consent names a person the agency sent before)."""
    sex: Literal["FEMALE", "MALE"] | None = None
    """A constant sex when the role implies it (a birth mother)."""
    clk_field: FieldPath | None = None
    """Where the event carries this person's CLK (privacy-preserving mode)."""
    clk_agreement: Identifier | None = None
    """The CLK agreement the encoding is made under; required with `clk_field`."""

    @model_validator(mode="after")
    def _consistent(self) -> LinkageSubject:
        if (self.clk_field is None) != (self.clk_agreement is None):
            raise ValueError("clk_field and clk_agreement go together")
        if self.keys_event and self.id_field != "subject_id":
            raise ValueError("the subject that keys the event is the one in subject_id")
        return self

    @property
    def lookup_only(self) -> bool:
        return not self.fields


class LinkedEventType(_Entry):
    subjects: tuple[LinkageSubject, ...]

    @model_validator(mode="after")
    def _one_key(self) -> LinkedEventType:
        if not self.subjects:
            raise ValueError("list at least one subject")
        keyed = [s.role for s in self.subjects if s.keys_event]
        if len(keyed) > 1:
            raise ValueError(f"only one subject may key the event; {', '.join(keyed)} do")
        roles = [s.role for s in self.subjects]
        if len(set(roles)) != len(roles):
            raise ValueError("each subject of an event type needs a role of its own")
        return self

    @property
    def keyed(self) -> LinkageSubject | None:
        return next((s for s in self.subjects if s.keys_event), None)


class ClkThresholdTerms(_Entry):
    """Dice similarity at and above which two encodings link, or go to review."""

    link: float = 0.9
    review: float = 0.85

    @model_validator(mode="after")
    def _ordered(self) -> ClkThresholdTerms:
        if not 0.0 < self.review <= self.link <= 1.0:
            raise ValueError("CLK thresholds need 0 < review <= link <= 1")
        return self


class ClkAgreement(_Entry):
    """Agencies that encode identities with one schema and a secret only they hold."""

    id: Identifier
    parties: tuple[Identifier, ...] = Field(min_length=2)
    schema_id: Literal["handoff-clk-v1"] = Field("handoff-clk-v1", alias="schema")
    thresholds: ClkThresholdTerms = ClkThresholdTerms()
    description: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _no_secret(cls, value: Any) -> Any:
        if isinstance(value, dict) and "secret" in value:
            raise ValueError("the encoding secret is held by the parties alone: never put "
                             "it (or where to find it) in the bundle")
        return value


class BirthMatchTerms(_Entry):
    """Births checked against one agency's restricted list of parents."""

    watch_list_from: Identifier
    """The agency whose `watch_list_entry` events make the list (child welfare)."""
    births_from: tuple[Identifier, ...] = Field(min_length=1)
    """Agencies whose births are checked (vital records)."""
    link_probability: float = 0.999
    """A parent matches an identity entry at or above this probability."""
    clk_dice: float = 0.9
    """A parent's CLK matches an encoded entry at or above this Dice similarity."""
    clk_agreement: Identifier | None = None
    """Under which CLK agreement encoded entries and birth encodings are made."""
    mother_clk_field: FieldPath = "mother.linkage_clk"
    """Where a birth carries the mother's CLK (made under `clk_agreement`)."""

    @model_validator(mode="after")
    def _bounds(self) -> BirthMatchTerms:
        _probability(self.link_probability, "link_probability")
        if not 0.0 < self.clk_dice <= 1.0:
            raise ValueError("clk_dice must be above 0 and at most 1")
        return self


class LinkageTerms(_Entry):
    """The whole of `linkage.yaml`."""

    thresholds: MatchThresholds = MatchThresholds()
    event_types: dict[Identifier, LinkedEventType] = Field(default_factory=dict)
    birth_match: BirthMatchTerms | None = None
    clk_agreements: tuple[ClkAgreement, ...] = ()
    description: str | None = None

    def subjects_of(self, event_type: str) -> tuple[LinkageSubject, ...]:
        found = self.event_types.get(event_type)
        return found.subjects if found is not None else ()

    def linked_paths(self, event_type: str) -> frozenset[str]:
        """The agency id fields of an event type whose pseudonyms are of person ids."""
        return frozenset(s.id_field for s in self.subjects_of(event_type))

    def clk_agreement(self, agreement_id: str) -> ClkAgreement | None:
        return next((a for a in self.clk_agreements if a.id == agreement_id), None)
