"""The policy engine (skeleton; filled in by the next change)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policy.bundle import PolicyBundle
from policy.consent import ConsentView
from policy.decision import Decision
from policy.model import Subscription
from schemas.catalog import SchemaCatalog


class PolicyEngine:
    """Decides, per event and subscription, which fields may be shared and why."""

    def __init__(self, bundle: PolicyBundle, catalog: SchemaCatalog, pseudonym_key: bytes) -> None:
        self.bundle = bundle
        self.catalog = catalog
        self._pseudonym_key = pseudonym_key

    def subscriptions_for(
        self, event_type: str, source: str, record: Mapping[str, Any]
    ) -> list[Subscription]:
        raise NotImplementedError

    def decide(
        self, event_type: str, schema_version: int, record: Mapping[str, Any], source: str,
        subscription_id: str, consents: ConsentView, at_ms: int,
    ) -> Decision:
        raise NotImplementedError

    def view_schema(self, subscription_id: str, event_type: str, schema_version: int
                    ) -> dict[str, Any]:
        raise NotImplementedError
