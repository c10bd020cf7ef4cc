"""Shared helpers for the policy tests: the catalog, the demo bundle, example records,
and builders for small in-memory bundles and consent records."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from policy import (
    Agreement,
    ConsentView,
    PolicyBundle,
    PolicyEngine,
    RulePack,
    Subscription,
    load_bundle,
)
from schemas.catalog import SchemaCatalog
from schemas.jsonform import record_from_json

REPO = Path(__file__).resolve().parents[3]
DEMO_DIR = REPO / "examples" / "demo" / "policy"
FIXTURES = Path(__file__).parent / "fixtures"
KEY = b"test-pseudonym-key-0123456789abcdef"

CATALOG = SchemaCatalog.load()
DEMO = load_bundle(DEMO_DIR, CATALOG)


def ms(text: str) -> int:
    """Epoch milliseconds of an ISO date or date-time (UTC when no offset)."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


AT = ms("2026-11-07T14:20:00")
"""Decision time used by most tests: inside every demo agreement."""


def example(event_type: str) -> dict[str, Any]:
    """A fresh copy of the schema's documented example, in fastavro's Python form."""
    schema = CATALOG.get(event_type)
    return record_from_json(dict(schema.schema), copy.deepcopy(dict(schema.example or {})))


def grant(
    consent_id: str = "C-1",
    *,
    subject: str = "MPI-0048213",
    recipients: Iterable[str] = ("hv-nfp",),
    purposes: Iterable[str] = ("care_coordination",),
    categories: Iterable[str] = ("*",),
    effective: str = "2026-01-01",
    expires: str | None = None,
    disclosers: Iterable[str] = (),
) -> dict[str, Any]:
    """A GRANT consent record in fastavro form (no disclosers: the recording agency)."""
    return {
        "event_id": f"ev-{consent_id}", "occurred_at": dt.datetime.fromtimestamp(
            ms(effective) / 1000, dt.UTC),
        "subject_id": subject, "consent_id": consent_id, "action": "GRANT",
        "grantor": {"name": "Jolene Lindqvist", "relationship": "SELF"},
        "recipients": list(recipients), "purposes": list(purposes),
        "categories": list(categories),
        "effective_at": dt.datetime.fromtimestamp(ms(effective) / 1000, dt.UTC),
        "expires_at": None if expires is None else dt.datetime.fromtimestamp(
            ms(expires) / 1000, dt.UTC),
        "form_reference": None, "disclosers": list(disclosers),
    }


def revoke(consent_id: str, subject: str = "MPI-0048213") -> dict[str, Any]:
    record = grant(consent_id, subject=subject)
    record["action"] = "REVOKE"
    return record


def consents(*records: dict[str, Any], ingested: str = "2026-01-01",
             recorded_by: str = "county-general") -> ConsentView:
    view = ConsentView()
    for record in records:
        view.apply(record, ms(ingested), recorded_by)
    return view


def bundle_with(
    agreements: Iterable[dict[str, Any]],
    subscriptions: Iterable[dict[str, Any]] | None = None,
    base: PolicyBundle = DEMO,
    extra_rules: Iterable[dict[str, Any]] = (),
) -> PolicyBundle:
    """The demo agencies and rule packs with these agreements; unless given, one
    subscription per agreement, named after it, for its recipient, purpose, types and
    source."""
    parsed = [Agreement.model_validate(a) for a in agreements]
    if subscriptions is None:
        subscriptions = [
            {"id": a.id, "agency": a.recipient, "purpose": a.purpose,
             "event_types": list(a.event_types), "sources": [a.source]}
            for a in parsed
        ]
    subs = [Subscription.model_validate(s) for s in subscriptions]
    packs = dict(base.rulepacks)
    rules = list(extra_rules)
    if rules:
        packs["test_pack"] = RulePack.model_validate({
            "regime": "test_pack", "title": "Rules added by a test", "notice": "test only",
            "rules": rules})
    return PolicyBundle(
        agencies=dict(base.agencies), agreements={a.id: a for a in parsed},
        rulepacks=packs, subscriptions={s.id: s for s in subs},
    )


def agreement(
    agreement_id: str, source: str, recipient: str, purpose: str, event_type: str,
    fields: list[Any], **extra: Any,
) -> dict[str, Any]:
    return {"id": agreement_id, "source": source, "recipient": recipient,
            "purpose": purpose, "event_types": [event_type], "fields": fields,
            "effective": dt.date(2026, 1, 1), **extra}


def engine_for(bundle: PolicyBundle, key: bytes = KEY) -> PolicyEngine:
    return PolicyEngine(bundle, CATALOG, pseudonym_key=key)
