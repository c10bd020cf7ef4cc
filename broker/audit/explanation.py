"""How a stored decision explains itself: one field at a time, as people read it.

The one place that reads a decision record's `detail` for its per-field explanation (and
a consent change's terms). Readers such as the compliance console take the values built
here and never look inside `detail` themselves, so a change in how decisions are stored
(a compact record naming a compiled plan kept once, say) changes this module alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from broker.audit.records import AuditKind, AuditRecord

FieldStatus = Literal["released", "transformed", "withheld"]


@dataclass(frozen=True, slots=True)
class FieldView:
    """The fate of one field of the source event: its path (never its value) and why."""

    path: str
    status: str
    transform: str | None
    reason: str
    rule_ids: tuple[str, ...]
    agreement_id: str | None


@dataclass(frozen=True, slots=True)
class ObligationView:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class DecisionView:
    """One decision, as the engine explained it when it was made."""

    outcome: str | None
    event_type: str | None
    purpose: str | None
    agreement_id: str | None
    bundle_version: str | None
    deny_reason: str | None
    fields: tuple[FieldView, ...]
    """Every leaf field of the source schema, in schema order."""
    consent_ids: tuple[str, ...]
    """`<recording agency>/<consent id>` of each consent relied on."""
    obligations: tuple[ObligationView, ...]
    legal_basis: tuple[str, ...]

    def with_status(self, status: str) -> tuple[str, ...]:
        return tuple(f.path for f in self.fields if f.status == status)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Every rule named by any field, once, in order of first mention."""
        return tuple(dict.fromkeys(r for f in self.fields for r in f.rule_ids))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _texts(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return tuple(str(item) for item in value if isinstance(item, str | int))
    return ()


def _field(item: Mapping[str, object]) -> FieldView:
    return FieldView(
        path=str(item.get("path", "")), status=str(item.get("status", "")),
        transform=_text(item.get("transform")), reason=str(item.get("reason") or ""),
        rule_ids=_texts(item.get("rule_ids")), agreement_id=_text(item.get("agreement_id")))


def _fields(detail: Mapping[str, object]) -> tuple[FieldView, ...]:
    listed = detail.get("fields")
    if isinstance(listed, list):
        return tuple(_field(item) for item in listed if isinstance(item, Mapping))
    # An older or compact record with only the summary lists.
    found: list[FieldView] = []
    for status in ("released", "transformed", "withheld"):
        found += [FieldView(path, status, None, "", (), None)
                  for path in _texts(detail.get(status))]
    return tuple(found)


def _obligations(value: object) -> tuple[ObligationView, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(ObligationView(str(item.get("id", "")), str(item.get("text", "")))
                 for item in value if isinstance(item, Mapping))


def is_decision(record: AuditRecord) -> bool:
    return record.kind == AuditKind.DECISION


def decision_view(record: AuditRecord) -> DecisionView:
    """The explanation of a decision record (`kind == "decision"`)."""
    detail = record.detail
    return DecisionView(
        outcome=record.outcome or _text(detail.get("outcome")),
        event_type=_text(detail.get("event_type")), purpose=_text(detail.get("purpose")),
        agreement_id=record.agreement or _text(detail.get("agreement_id")),
        bundle_version=_text(detail.get("bundle_version")),
        deny_reason=_text(detail.get("deny_reason")), fields=_fields(detail),
        consent_ids=_texts(detail.get("consent_ids")),
        obligations=_obligations(detail.get("obligations")),
        legal_basis=_texts(detail.get("legal_basis")),
    )


@dataclass(frozen=True, slots=True)
class ConsentChangeView:
    """A recorded grant, revocation or refused attempt, without the grantor's name."""

    seq: int
    at_ms: int
    consent_id: str | None
    action: str | None
    """`GRANT` or `REVOKE`."""
    code: str | None
    outcome: str | None
    """`granted`, `revoked` or `refused`."""
    recorded_by: str | None
    """The agency that recorded it."""
    actor: str | None
    """The key id that published it."""
    reason: str | None
    recipients: tuple[str, ...]
    disclosers: tuple[str, ...]
    purposes: tuple[str, ...]
    categories: tuple[str, ...]
    effective_at: str | None
    expires_at: str | None

    @property
    def relied_on_as(self) -> str | None:
        """How a decision names this consent: `<recording agency>/<consent id>`."""
        if self.recorded_by is None or self.consent_id is None:
            return None
        return f"{self.recorded_by}/{self.consent_id}"


def consent_change_view(record: AuditRecord) -> ConsentChangeView:
    """The particulars of a `consent_change` record."""
    detail = record.detail
    return ConsentChangeView(
        seq=record.seq, at_ms=record.at_ms, consent_id=_text(detail.get("consent_id")),
        action=_text(detail.get("action")), code=_text(detail.get("code")),
        outcome=record.outcome, recorded_by=_text(detail.get("recorded_by")) or record.source,
        actor=record.actor, reason=_text(detail.get("reason")),
        recipients=_texts(detail.get("recipients")), disclosers=_texts(detail.get("disclosers")),
        purposes=_texts(detail.get("purposes")), categories=_texts(detail.get("categories")),
        effective_at=_text(detail.get("effective_at")),
        expires_at=_text(detail.get("expires_at")),
    )
