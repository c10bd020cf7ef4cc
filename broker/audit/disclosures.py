"""The accounting of disclosures: what was released about one person, to whom, and why.

Built from the audit records of permitted decisions (HIPAA 45 CFR 164.528 and FERPA
34 CFR 99.32 ask for date, recipient, data disclosed, purpose and legal basis). The
decision detail is `Decision.to_dict()` from the policy library; it is read tolerantly
(field lists as paths or as objects with a `path`) so older records stay readable when
the decision format grows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broker.audit.records import AuditKind, AuditRecord

PERMIT = "permit"


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One disclosure of a person's data: a permitted decision for that subject."""

    seq: int
    at_ms: int
    recipient: str | None
    subscription: str | None
    event_type: str | None
    event_id: str | None
    released: tuple[str, ...]
    """Field paths disclosed as they were."""
    transformed: tuple[str, ...]
    """Field paths disclosed after a transform (generalised, masked, pseudonymised)."""
    purpose: str | None
    agreement: str | None
    legal_basis: tuple[str, ...]
    """The agreement id first, then the citations of the rules that permitted release."""
    consent_ids: tuple[str, ...]
    decision_id: str | None

    @property
    def date(self) -> str:
        """When the decision was made, ISO 8601 in UTC to the second."""
        moment = datetime.fromtimestamp(self.at_ms / 1000, tz=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def data_disclosed(self) -> tuple[str, ...]:
        """Every field path disclosed, released or transformed, in that order."""
        return self.released + self.transformed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "date": self.date, "at_ms": self.at_ms, "seq": self.seq,
            "recipient": self.recipient, "subscription": self.subscription,
            "event_type": self.event_type, "event_id": self.event_id,
            "data_disclosed": list(self.data_disclosed), "released": list(self.released),
            "transformed": list(self.transformed), "purpose": self.purpose,
            "agreement": self.agreement, "legal_basis": list(self.legal_basis),
            "consent_ids": list(self.consent_ids), "decision_id": self.decision_id,
        }


def is_disclosure(record: AuditRecord) -> bool:
    """Whether a record is a permitted decision, i.e. a disclosure."""
    return record.kind == AuditKind.DECISION and record.outcome == PERMIT


def _texts(value: Any, keys: tuple[str, ...]) -> list[str]:
    """Strings from a str, a list of str, or a list of objects holding one of `keys`."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [str(key) for key in value]
    found: list[str] = []
    if isinstance(value, Iterable):
        for item in value:
            if isinstance(item, str):
                found.append(item)
            elif isinstance(item, Mapping):
                text = next((item[key] for key in keys if item.get(key)), None)
                if text is not None:
                    found.append(str(text))
    return found


def _paths_with_status(detail: Mapping[str, Any], status: str) -> list[str]:
    listed = detail.get(status)
    if listed is not None:
        return _texts(listed, ("path",))
    # Fall back to the per-field explanation when the summary lists are absent.
    fields = detail.get("fields")
    if isinstance(fields, list):
        return [
            str(item["path"]) for item in fields
            if isinstance(item, Mapping) and item.get("status") == status and "path" in item
        ]
    return []


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def disclosure_from_record(record: AuditRecord) -> Disclosure:
    """Read one permitted decision record as a disclosure."""
    detail = record.detail
    agreement = record.agreement or _first(detail, "agreement_id", "agreement")
    citations = _texts(detail.get("legal_basis"), ("citation", "reference", "rule_id", "id"))
    legal_basis = _unique(([agreement] if agreement else []) + citations)
    return Disclosure(
        seq=record.seq,
        at_ms=record.at_ms,
        recipient=record.recipient or _first(detail, "recipient"),
        subscription=record.subscription or _first(detail, "subscription_id", "subscription"),
        event_type=_first(detail, "event_type"),
        event_id=record.event_id or _first(detail, "event_id"),
        released=_unique(_paths_with_status(detail, "released")),
        transformed=_unique(_paths_with_status(detail, "transformed")),
        purpose=_first(detail, "purpose"),
        agreement=agreement,
        legal_basis=legal_basis,
        consent_ids=_unique(_texts(detail.get("consent_ids"), ("consent_id", "id"))),
        decision_id=record.decision_id or _first(detail, "decision_id"),
    )


def _first(detail: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = detail.get(key)
        if isinstance(value, str) and value:
            return value
    return None
