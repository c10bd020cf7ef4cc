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
from broker.event_types import EventTypes
from broker.ingest.group_commit import GroupCommitter
from broker.ingest.idempotency import IdempotencyIndex
from broker.ingest.publisher import Publisher
from broker.log.port import EventLog
from broker.metrics import Metrics
from broker.policy_holder import PolicyHolder
from broker.view_schemas import ViewSchemas
from schemas.registry import SchemaRegistry
from schemas.wire import WireCodec

if TYPE_CHECKING:
    from broker.services import Services


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
    idempotency: IdempotencyIndex
    committer: GroupCommitter
    publisher: Publisher
    feed: DeliveryFeed
    metrics: Metrics
    keyring: KeyRing
    services: Services | None = field(default=None)
