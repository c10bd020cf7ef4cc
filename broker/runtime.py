"""The running broker's parts, wired together by `broker.bootstrap`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from broker.audit import AuditStore
from broker.auditing import Auditor
from broker.auth import KeyRing
from broker.config import Settings
from broker.consent_feed import ConsentFeed
from broker.delivery.feed import DeliveryFeed
from broker.errors import BrokerError
from broker.event_types import EventTypes
from broker.ingest.group_commit import GroupCommitter
from broker.ingest.idempotency import IdempotencyIndex
from broker.ingest.publisher import Publisher
from broker.log.port import EventLog
from broker.metrics import Metrics
from broker.policy_holder import PolicyHolder
from broker.roles import Roles, RouterLock
from broker.view_schemas import ViewSchemas
from schemas.registry import SchemaRegistry
from schemas.wire import WireCodec

if TYPE_CHECKING:
    from broker.services import Services


@dataclass
class IngestPath:
    """What accepting events needs: the duplicate index, the group committer and the
    publisher in front of them. Only processes with the `api` role have one."""

    idempotency: IdempotencyIndex
    committer: GroupCommitter
    publisher: Publisher

    def close(self) -> None:
        self.committer.close()
        self.idempotency.close()


@dataclass
class Runtime:
    settings: Settings
    log: EventLog
    registry: SchemaRegistry
    event_types: EventTypes
    codec: WireCodec
    policy: PolicyHolder
    consents: ConsentFeed
    views: ViewSchemas
    audit_store: AuditStore
    auditor: Auditor
    feed: DeliveryFeed
    metrics: Metrics
    keyring: KeyRing
    ingest: IngestPath | None = None
    roles: Roles = field(default_factory=Roles.all)
    router_lock: RouterLock | None = None
    """Held while this process routes the embedded log (one router per data dir)."""
    services: Services | None = field(default=None)

    @property
    def publisher(self) -> Publisher:
        return self._ingest().publisher

    @property
    def committer(self) -> GroupCommitter:
        return self._ingest().committer

    @property
    def idempotency(self) -> IdempotencyIndex:
        return self._ingest().idempotency

    def _ingest(self) -> IngestPath:
        if self.ingest is None:
            raise BrokerError(f"this process (role {self.roles}) does not accept events")
        return self.ingest
