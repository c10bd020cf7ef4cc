"""What the routes may depend on, one FastAPI dependency each.

A route states the narrow things it needs (`publisher: Publisher = Depends(publisher)`),
never the whole broker. `broker.bootstrap` builds one `ApiParts` per process and
`create_app` installs it; only this module reads it. Parts a process's roles do not
build (no publisher without the `api` role) answer 503 if a route asks for them, which
cannot happen for the routes a role mounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from fastapi import Request

from broker.audit import AuditStore
from broker.auditor import Auditor
from broker.auth import KeyRing
from broker.clock import Clock
from broker.config import ApiSettings, FhirSettings
from broker.connect.host import ConnectorHost
from broker.delivery.dead_letters import DeadLetterQueue
from broker.delivery.feed import DeliveryFeed
from broker.delivery.webhook_state import WebhookStateStore
from broker.errors import BrokerError
from broker.event_types import EventTypes
from broker.ingest.publisher import Publisher
from broker.metrics import Metrics
from broker.policy_holder import LoadedPolicy, PolicyHolder
from broker.reloads import PolicyReloader
from broker.roles import Roles
from broker.workers import Workers
from schemas.registry import SchemaRegistry


class NotServedHere(BrokerError):
    """A part this process's roles do not run."""

    retriable = True


@dataclass(frozen=True)
class ApiParts:
    """Everything the HTTP API of one process uses, built by `broker.bootstrap`."""

    settings: ApiSettings
    roles: Roles
    keyring: KeyRing
    metrics: Metrics
    auditor: Auditor
    audit: AuditStore
    policy: PolicyHolder
    reloader: PolicyReloader
    event_types: EventTypes
    registry: SchemaRegistry
    feed: DeliveryFeed
    workers: Workers
    clock: Clock
    fhir: FhirSettings
    publisher: Publisher | None = None
    """Only with the `api` role."""
    connectors: ConnectorHost | None = None
    """Only with the `api` role and connectors configured."""
    webhook_state: WebhookStateStore | None = None
    dead_letter_queue: DeadLetterQueue | None = None
    """Webhook delivery state and dead letters: only with the `delivery` role."""


def _parts(request: Request) -> ApiParts:
    parts: ApiParts = request.app.state.parts
    return parts


def api_settings(request: Request) -> ApiSettings:
    return _parts(request).settings


def fhir_settings(request: Request) -> FhirSettings:
    return _parts(request).fhir


def publisher(request: Request) -> Publisher:
    found = _parts(request).publisher
    if found is None:
        raise NotServedHere("this process (without the api role) does not accept events")
    return found


def feed(request: Request) -> DeliveryFeed:
    return _parts(request).feed


def auditor(request: Request) -> Auditor:
    return _parts(request).auditor


def audit_store(request: Request) -> AuditStore:
    return _parts(request).audit


def policy(request: Request) -> LoadedPolicy:
    """The policy in force, read once for the whole request."""
    return _parts(request).policy.current


def policy_holder(request: Request) -> PolicyHolder:
    """Where the policy in force is kept, with the last refused reload (for `/readyz`)."""
    return _parts(request).policy


def reloader(request: Request) -> PolicyReloader:
    return _parts(request).reloader


def event_types(request: Request) -> EventTypes:
    return _parts(request).event_types


def registry(request: Request) -> SchemaRegistry:
    return _parts(request).registry


def connectors(request: Request) -> ConnectorHost | None:
    """None when this process runs no connectors."""
    return _parts(request).connectors


def webhook_state(request: Request) -> WebhookStateStore:
    """The webhook state, caught up with `_webhook.state` for this request (the
    dispatchers write it from their own threads)."""
    found = _parts(request).webhook_state
    if found is None:
        raise NotServedHere("this process (without the delivery role) keeps no webhook state")
    found.catch_up()
    return found


def dead_letter_queue(request: Request) -> DeadLetterQueue:
    found = _parts(request).dead_letter_queue
    if found is None:
        raise NotServedHere("this process (without the delivery role) has no dead letters")
    return found


def workers(request: Request) -> Workers:
    return _parts(request).workers


def metrics(request: Request) -> Metrics:
    return _parts(request).metrics


def clock(request: Request) -> Clock:
    return _parts(request).clock


def keyring(request: Request) -> KeyRing:
    """The API keys in force (open streams ask it whether their key still is)."""
    return _parts(request).keyring


def wait_limiter(request: Request) -> anyio.CapacityLimiter:
    """Threads for long polls and streams, apart from the request threads."""
    limiter: anyio.CapacityLimiter = request.app.state.wait_limiter
    return limiter
