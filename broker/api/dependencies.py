"""What the routes may depend on, one FastAPI dependency each.

A route states the narrow things it needs (`publisher: Publisher = Depends(publisher)`),
never the whole broker. `broker.bootstrap` builds one `ApiParts` per process and
`create_app` installs it; only this module reads it. Parts a process's roles do not
build (no publisher without the `api` role) answer 503 if a route asks for them, which
cannot happen for the routes a role mounts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio
from fastapi import FastAPI, Request

from broker.api.future_bridge import FutureBridge
from broker.api.key_lapse import KeyWatch
from broker.audit import AuditReader, AuditStore, AuditVerifier
from broker.auditor import Auditor
from broker.auth import KeyRing
from broker.clock import Clock
from broker.config import ApiSettings, FhirSettings
from broker.connect.host import ConnectorHost
from broker.delivery.dead_letters import DeadLetterQueue
from broker.delivery.fanout import FanOut
from broker.delivery.feed import DeliveryFeed
from broker.delivery.webhook_state import WebhookStateStore
from broker.errors import BrokerError
from broker.event_types import EventTypes
from broker.ingest.publisher import Publisher
from broker.linking.service import LinkageService
from broker.metrics import Metrics
from broker.metrics_history import MetricsHistory
from broker.policy_holder import LoadedPolicy, PolicyHolder
from broker.policy_install import PolicyInstaller
from broker.policy_trial import PolicyTrial
from broker.referral_service import ReferralService
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
    verifier: AuditVerifier | None = None
    """Re-walks the audit log's chains (the console's integrity page)."""
    audit_public_key: Path | None = None
    """The public key checkpoint signatures are checked against: the pinned one
    (`audit.public_key_file`) or, unpinned, the one beside the data."""
    audit_key_pinned: bool = False
    policy_trial: PolicyTrial | None = None
    policy_installer: PolicyInstaller | None = None
    """The console's policy dry-run, and applying a tried bundle (`api` role)."""
    metrics_history: MetricsHistory | None = None
    """The process's own metrics over the last hour (`api` role)."""
    extensions: tuple[Callable[[FastAPI], None], ...] = ()
    """Called by `create_app` with the app: the console mounts itself this way, so the
    API layer never imports it."""
    linkage: LinkageService | None = None
    """Record linkage: read-write with the `router` role (the linker), read-only from a
    replica with the `api` role alone."""
    referrals: ReferralService | None = None
    """The referral ledger's reports: with the `api` or `router` role."""


def _parts(request: Request) -> ApiParts:
    parts: ApiParts = request.app.state.parts
    return parts


_T = TypeVar("_T")


def _served(found: _T | None, why: str) -> _T:
    """What a provider hands out, or the 503 saying this process does not serve it."""
    if found is None:
        raise NotServedHere(why)
    return found


def api_settings(request: Request) -> ApiSettings:
    return _parts(request).settings


def fhir_settings(request: Request) -> FhirSettings:
    return _parts(request).fhir


async def publisher(request: Request) -> Publisher:
    """The publisher (async: an attribute read needs no worker thread)."""
    return _served(_parts(request).publisher,
                   "this process (without the api role) does not accept events")


def feed(request: Request) -> DeliveryFeed:
    return _parts(request).feed


def auditor(request: Request) -> Auditor:
    return _parts(request).auditor


def audit_store(request: Request) -> AuditStore:
    return _parts(request).audit


def audit_reader(request: Request) -> AuditReader:
    """Reading the audit log: pages, streams, counts, disclosures, checkpoints."""
    return _parts(request).audit


def audit_verifier(request: Request) -> AuditVerifier:
    return _served(_parts(request).verifier,
                   "this process cannot verify its audit log")


def audit_public_key(request: Request) -> tuple[Path | None, bool]:
    """(the public key file signatures are checked against, whether it is pinned)."""
    parts = _parts(request)
    return parts.audit_public_key, parts.audit_key_pinned


def keyring(request: Request) -> KeyRing:
    return _parts(request).keyring


def policy_trial(request: Request) -> PolicyTrial:
    return _served(_parts(request).policy_trial,
                   "this process (without the api role) runs no policy dry-run")


def policy_installer(request: Request) -> PolicyInstaller:
    return _served(_parts(request).policy_installer,
                   "this process (without the api role) cannot apply a bundle")


def metrics_history(request: Request) -> MetricsHistory:
    return _served(_parts(request).metrics_history,
                   "this process keeps no metrics history")


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
    return _served(_parts(request).dead_letter_queue,
                   "this process (without the delivery role) has no dead letters")


def linkage_if_kept(request: Request) -> LinkageService | None:
    """The person index, or None in a process that keeps none."""
    return _parts(request).linkage


def linkage(request: Request) -> LinkageService:
    return _served(_parts(request).linkage,
                   "this process keeps no person index")


def referrals_if_kept(request: Request) -> ReferralService | None:
    """The referral ledger's reports, or None in a process that keeps no ledger."""
    return _parts(request).referrals


def referrals(request: Request) -> ReferralService:
    return _served(_parts(request).referrals,
                   "this process (without the api or router role) keeps no "
                            "referral ledger")


def workers(request: Request) -> Workers:
    return _parts(request).workers


def metrics(request: Request) -> Metrics:
    return _parts(request).metrics


def clock(request: Request) -> Clock:
    return _parts(request).clock


def fanout(request: Request) -> FanOut:
    """The process's shared readers of delivery topics (`broker.delivery.fanout`)."""
    hubs: FanOut = request.app.state.fanout
    return hubs


def future_bridge(request: Request) -> FutureBridge:
    """Awaits group commit's answers, one wake-up of the loop per burst of them: one
    bridge per event loop (a server has one; a test client may run a loop per call)."""
    loop = asyncio.get_running_loop()
    bridge: FutureBridge | None = getattr(request.app.state, "future_bridge", None)
    if bridge is None or bridge.loop is not loop:
        bridge = request.app.state.future_bridge = FutureBridge(loop)
    return bridge


def key_watch(request: Request) -> KeyWatch:
    """The process's one look at the keys of open streams and long polls."""
    watch: KeyWatch = request.app.state.key_watch
    return watch


def wait_limiter(request: Request) -> anyio.CapacityLimiter:
    """Threads for long polls and streams, apart from the request threads."""
    limiter: anyio.CapacityLimiter = request.app.state.wait_limiter
    return limiter
