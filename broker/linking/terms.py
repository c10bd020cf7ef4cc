"""The bundle's linkage terms as the linkage library's values, and record keys.

A record key is `agency|id_system|value`: one agency's id for a person, in one of its
numbering schemes. It stays with the broker: the audit log names it by its pseudonym,
recipients never see it.
"""

from __future__ import annotations

from dataclasses import dataclass

from linkage.identity import AgencyId, key_parts
from linkage.subjects import SubjectMapping
from linkage.thresholds import Thresholds
from policy.linkage_terms import DEFAULT_ID_SYSTEM, LinkageSubject, LinkageTerms

CONSENT_EVENT_TYPE = "consent"


def subject_mapping(subject: LinkageSubject) -> SubjectMapping:
    return SubjectMapping(
        role=subject.role, id_system=subject.id_system, id_field=subject.id_field,
        fields=tuple(subject.fields.items()), sex=subject.sex,
        keys_event=subject.keys_event)


def thresholds_of(terms: LinkageTerms) -> Thresholds:
    return Thresholds.from_probabilities(terms.thresholds.link_probability,
                                         terms.thresholds.review_probability)


def consent_id_system(terms: LinkageTerms | None) -> str:
    """The numbering scheme a consent's `subject_id` is in (its keyed subject's)."""
    if terms is None:
        return DEFAULT_ID_SYSTEM
    linked = terms.event_types.get(CONSENT_EVENT_TYPE)
    keyed = linked.keyed if linked is not None else None
    return keyed.id_system if keyed is not None else DEFAULT_ID_SYSTEM


@dataclass(frozen=True, slots=True)
class RecordRef:
    """An agency record of a person, as stewards look it up in the agency's system."""

    agency: str
    id_system: str
    id: str

    @property
    def key(self) -> str:
        return AgencyId(self.agency, self.id_system, self.id).key

    @classmethod
    def of(cls, key: str) -> RecordRef:
        return cls(*key_parts(key))

    def to_dict(self) -> dict[str, str]:
        return {"agency": self.agency, "id_system": self.id_system, "id": self.id}
