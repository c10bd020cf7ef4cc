"""The composition root: reads settings and builds a broker process's object graph once.

`build_broker(settings, roles)` opens every adapter (the event log, the audit store, the
idempotency index, key files), builds the parts each role needs and the workers that run
in the background, and returns them as a `Broker`. Nothing else in the broker opens
files, creates clients or reads the environment. Adapters can be passed in (`log=`,
`audit=`), so tests run the same graph over fakes or their own test services; what is
passed in is the caller's to close. How each store, key file and the event log is opened
lives beside it in `stores.py`, record linkage's index and linker in `linkage.py`.

What a `Broker` holds is for entry points (`handoff serve`, `handoff connect run`, the
connector test harness) and tests. Routes never see it: `create_app(broker.api)` hands
them only `ApiParts`, through FastAPI dependencies (`broker.api.dependencies`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from broker.api.dependencies import ApiParts
from broker.audit import (
    AuditStore,
    SubjectPseudonymizer,
)
from broker.audit.paths import (
    pseudonym_key_path,
    signing_public_key_path,
)
from broker.audit.pseudonym import load_or_create_pseudonym_key
from broker.auditor import Auditor
from broker.auth import FileKeyRing, KeyRing
from broker.bootstrap.linkage import (
    LINKAGE_MODEL_FILE,
    PERSON_INDEX_FILE,
    PERSON_REPLICA_FILE,
    load_linkage_model,
    open_linkage_replica,
    open_linker,
    open_person_index,
)
from broker.bootstrap.stores import (
    audit_verifier,
    event_schema_files,
    load_or_create_secret,
    open_audit_store,
    open_event_log,
    open_idempotency_index,
    open_referral_reports,
)
from broker.checkpoint_worker import CheckpointWorker, signer_for
from broker.clock import Clock, now_ms
from broker.config import Settings
from broker.connect.host import ConnectorHost
from broker.connect.offsets import DeadLetterTopic, TopicOffsetStore
from broker.connect.parts import ConnectParts
from broker.connect.status import ConnectorMetrics
from broker.consent_feed import ConsentFeed
from broker.consent_recording import ConsentRecording
from broker.console import mount_console
from broker.crypto.encrypted_log import register_encryption_metrics
from broker.delivery.dead_letters import DeadLetterQueue
from broker.delivery.feed import DeliveryFeed
from broker.delivery.retry_schedule import RetrySchedule
from broker.delivery.webhook_secrets import WebhookSecrets
from broker.delivery.webhook_sender import WebhookSender
from broker.delivery.webhook_service import WebhookDelivery
from broker.delivery.webhook_state import WebhookStateStore
from broker.delivery.webhooks import DispatcherParts
from broker.errors import ConfigError
from broker.event_types import EventTypes
from broker.ingest.group_commit import GroupCommitter
from broker.ingest.publisher import Publisher
from broker.linking.service import LinkageService
from broker.linking.stage import LinkageStage
from broker.log.port import EventLog, TopicSpec
from broker.metrics import Metrics
from broker.metrics_history import MetricsHistory
from broker.policy_holder import PolicyHolder
from broker.policy_install import PolicyInstaller
from broker.policy_trial import PolicyTrial
from broker.referral_feed import LEDGER_FILE, LOCK_FILE, ReferralFeed
from broker.referral_recording import ReferralRecording
from broker.referral_service import ReferralService
from broker.referral_store import SqliteLedgerStore
from broker.referral_timers import ReferralTimers
from broker.registry_store import LogRegistryStore
from broker.reloads import PolicyReloader, audit_key_changes, record_policy_in_force
from broker.retention import retention_enforcer
from broker.roles import Roles, RouterLock
from broker.router import Router
from broker.topics import POLICY, QUARANTINE, delivery_topic, ingress_topic
from broker.view_schemas import ViewSchemaRegistrar
from broker.workers import ThreadWorker, Worker, Workers
from connectors.base import ConnectorConfig
from connectors.config_file import load_connectors_file
from schemas.errors import SchemaError
from schemas.registry import SchemaRegistry
from schemas.wire import WireCodec

log = logging.getLogger("handoff")

__all__ = ["LINKAGE_MODEL_FILE", "PERSON_INDEX_FILE", "PERSON_REPLICA_FILE", "Broker",
           "build_broker", "event_schema_files", "load_linkage_model", "load_or_create_secret",
           "open_audit_store", "open_event_log", "open_person_index", "open_referral_reports"]
WEBHOOK_SECRETS_FILE = "webhook-secrets.yaml"


@dataclass(frozen=True)
class Broker:
    """One process's broker: what the API needs, the workers, and the adapters."""

    settings: Settings
    roles: Roles
    api: ApiParts
    """Everything the HTTP API uses: `create_app(broker.api)`."""
    workers: Workers
    """Started by `start()` in order, stopped by `stop()` in reverse."""
    router: Router | None
    """With the `router` role; its thread is a worker unless built with
    `router_thread=False` (the caller then calls `router.step()`)."""
    connectors: ConnectorHost | None
    log: EventLog
    audit: AuditStore
    registry: SchemaRegistry
    codec: WireCodec
    event_types: EventTypes
    policy: PolicyHolder
    feed: DeliveryFeed
    auditor: Auditor
    metrics: Metrics
    publisher: Publisher | None
    consents: ConsentFeed
    """The consent topic as a view (the router decides with it, the publisher checks
    revocations against it)."""
    referrals: ReferralFeed | None = None
    """The referral ledger, with the `api` or `router` role."""
    closers: tuple[Callable[[], None], ...] = ()
    """Called in order after the workers stop: what bootstrap opened, it closes."""
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)

    def start(self) -> None:
        self.workers.start()

    def stop(self) -> None:
        """Stop the workers, then close what was opened. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.workers.stop()
        for close in self.closers:
            close()


def build_broker(settings: Settings, roles: Roles | None = None, *,
                 log: EventLog | None = None, audit: AuditStore | None = None,
                 clock: Clock = now_ms,
                 connectors: Sequence[ConnectorConfig] | None = None,
                 router_thread: bool = True, timer_clock: Clock | None = None,
                 supervised: Sequence[Worker] = ()) -> Broker:
    """Build what a process with `roles` (default: every role) needs.

    `supervised`: workers the caller made that run beside the roles' own (the router
    process `handoff serve` supervises); started right after the checkpoint signer, so
    stopped just before it.

    `connectors`: the connectors to run (they need the `api` role); None runs those of
    the `connectors_file` setting, if any. `timer_clock`: the clock the referral
    service-level timers run on (default `clock`; the demo runs it fast).
    """
    roles = roles or Roles.all()
    closers: list[Callable[[], None]] = []
    try:
        return _build(settings, roles, log, audit, clock, connectors, router_thread,
                      closers, timer_clock or clock, tuple(supervised))
    except BaseException:
        for close in closers:  # what was opened before the failure, newest first
            close()
        raise


def _build(settings: Settings, roles: Roles, given_log: EventLog | None,
           given_audit: AuditStore | None, clock: Clock,
           connector_configs: Sequence[ConnectorConfig] | None, router_thread: bool,
           closers: list[Callable[[], None]], timer_clock: Clock,
           supervised: tuple[Worker, ...]) -> Broker:
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    if not settings.policy_dir.is_dir():
        raise ConfigError(f"{settings.policy_dir}: policy folder not found; pass --policy DIR")
    # The embedded log's consumer group lives inside one process: one router per data dir.
    if roles.router and settings.log.backend == "embedded":
        closers.insert(0, RouterLock(data).release)
    metrics = Metrics()
    event_log = given_log or open_event_log(settings)
    if given_log is None:
        closers.insert(0, event_log.close)
    register_encryption_metrics(event_log, metrics.registry)
    registry = SchemaRegistry(LogRegistryStore(event_log))
    codec = WireCodec(registry, max_bytes=settings.api.max_body_bytes)

    def ensure_ingress(event_type: str) -> None:
        # Called for every type before it is known: at start, and for a type registered
        # or loaded from the schema folder while running (no restart needed).
        event_log.ensure_topic(TopicSpec(ingress_topic(event_type),
                                         partitions=settings.log.ingress_partitions))

    try:
        schema_files = event_schema_files(settings)
    except SchemaError as exc:
        raise ConfigError(str(exc)) from None
    event_types = EventTypes(registry, schema_files, on_new_type=ensure_ingress)
    event_log.ensure_topic(TopicSpec(QUARANTINE))
    event_log.ensure_topic(TopicSpec(POLICY))

    policy = PolicyHolder(settings.policy_dir, event_types.catalog,
                          load_or_create_secret(data / "keys" / "policy-pseudonym.key"),
                          ViewSchemaRegistrar(registry))
    for sub_id in policy.current.bundle.subscriptions:
        event_log.ensure_topic(TopicSpec(delivery_topic(sub_id),
                                         partitions=settings.log.delivery_partitions))

    audit_store = given_audit or open_audit_store(settings, event_log, roles)
    if given_audit is None:
        closers.insert(0, audit_store.close)
    pseudonymizer = SubjectPseudonymizer(load_or_create_pseudonym_key(pseudonym_key_path(data)))
    auditor = Auditor(audit_store, pseudonymizer, metrics, clock)
    record_policy_in_force(event_log, policy, auditor)
    feed = DeliveryFeed(event_log, codec, registry)
    # A process agencies never call does not need (or get) the keys file.
    keyring = FileKeyRing(settings.resolved_keys_file) if roles.serves_clients else KeyRing()
    audit_key_changes(keyring, auditor)

    # The consent topic as a view: the router decides with it; the publisher reads it to
    # check that a revocation names a consent its agency recorded. One per process.
    consents = ConsentFeed(event_log, codec)
    # The referral ledger: the publisher checks status updates against it, the router
    # process keeps it and fires its timers. Processes on one data directory share it.
    referrals = None
    if roles.api or roles.router:
        ledger_store = SqliteLedgerStore(data / LEDGER_FILE)
        closers.insert(0, ledger_store.close)
        referrals = ReferralFeed(event_log, codec, ledger_store,
                                 lambda: policy.current.bundle, data / LOCK_FILE)
    publisher = None
    if roles.api or roles.router:  # the router process publishes overdue alerts
        idempotency = open_idempotency_index(settings, event_log)
        committer = GroupCommitter(event_log, idempotency)
        closers[:0] = [committer.close, idempotency.close]
        publisher = Publisher(event_types, codec, committer, auditor, metrics, policy,
                              ConsentRecording(consents, auditor),
                              ReferralRecording(referrals) if referrals else None)

    workers: list[Worker] = []
    # Listed first, so it stops last and signs what every other worker wrote last.
    signer = signer_for(settings.data_dir, settings.log.backend, roles.router)
    if signer is not None:
        workers.append(CheckpointWorker(
            signer, audit_store,
            settings.audit.checkpoint_interval_seconds if roles.router else None))
    workers.extend(supervised)
    router = None
    linkage_stage = None
    linkage = None
    if roles.router:
        linker, watch_list, close_index = open_linker(settings, event_log, codec, auditor,
                                                      metrics, policy.current.bundle)
        closers.insert(0, close_index)
        linkage_stage = LinkageStage(linker, watch_list, metrics)
        linkage = LinkageService(linker.index, auditor, audit_store, linker=linker)
    elif roles.api:
        linkage = open_linkage_replica(settings, event_log, auditor, audit_store, closers)
    if roles.router:
        consents.catch_up()
        router = Router(event_log, event_types, codec, policy, consents, auditor, metrics,
                        batch_size=settings.router.batch_size,
                        poll_timeout=settings.router.poll_timeout_seconds, clock=clock,
                        linkage=linkage_stage, linger=router_linger(settings))
        if router_thread:
            workers.append(ThreadWorker("router", router.run, healthy=router.healthy.is_set))
        retention = retention_enforcer(event_log, settings.retention, auditor,
                                       metrics.registry)
        if retention is not None:
            workers.append(ThreadWorker("retention", retention.run))
        assert referrals is not None and publisher is not None
        workers.append(ReferralTimers(
            referrals, publisher, auditor, tick_seconds=settings.referrals.tick_seconds,
            batch=settings.referrals.alerts_per_tick, clock=timer_clock))

    webhook_state = dead_letter_queue = None
    if roles.delivery:
        webhook_state, dead_letter_queue = WebhookStateStore(event_log), DeadLetterQueue(
            event_log)
        w = settings.webhooks
        workers.append(WebhookDelivery(DispatcherParts(
            event_log=event_log, feed=feed, policy=policy, state=webhook_state,
            dead_letters=dead_letter_queue,
            secrets=WebhookSecrets(w.secrets_file or data / WEBHOOK_SECRETS_FILE,
                                   {sub: [v.get_secret_value() for v in values]
                                    for sub, values in w.secrets.items()}),
            schedule=RetrySchedule.of(w.schedule_seconds, w.jitter, w.max_retry_after_seconds),
            auditor=auditor, metrics=metrics,
            sender_factory=lambda: WebhookSender(timeout=w.timeout_seconds),
        ), enabled=w.enabled))

    host = None
    configs = _connector_configs(settings, roles, connector_configs)
    if configs is not None:
        assert publisher is not None
        host = ConnectorHost(ConnectParts(
            publisher=publisher, feed=feed, policy=policy,
            offsets=TopicOffsetStore(event_log), dead_letters=DeadLetterTopic(event_log),
            metrics=ConnectorMetrics.on(metrics.registry), state_root=data / "connectors",
        ), configs)
        workers.append(host)

    history = None
    if roles.api:
        history = MetricsHistory(metrics.registry)
        workers.append(history)
    running = Workers(workers)
    reloader = PolicyReloader(policy, event_log, auditor, settings.log.delivery_partitions,
                              event_types, lambda: event_schema_files(settings))
    pinned = settings.audit.public_key_file
    api = ApiParts(
        settings=settings.api, roles=roles, keyring=keyring, metrics=metrics,
        auditor=auditor, audit=audit_store, policy=policy, reloader=reloader,
        event_types=event_types, registry=registry, feed=feed, workers=running,
        clock=clock, fhir=settings.fhir, publisher=publisher if roles.api else None,
        connectors=host,
        webhook_state=webhook_state, dead_letter_queue=dead_letter_queue, linkage=linkage,
        verifier=audit_verifier(settings, event_log, audit_store),
        audit_public_key=pinned or signing_public_key_path(data),
        audit_key_pinned=pinned is not None,
        policy_trial=PolicyTrial(event_log, codec, event_types, policy, consents)
        if roles.api else None,
        policy_installer=PolicyInstaller(policy, reloader) if roles.api else None,
        metrics_history=history,
        extensions=(mount_console,) if roles.api and settings.api.console.enabled else (),
        referrals=(ReferralService(referrals, settings.referrals, timer_clock)
                   if referrals else None),
    )
    return Broker(
        settings=settings, roles=roles, api=api, workers=running, router=router,
        connectors=host, log=event_log, audit=audit_store, registry=registry, codec=codec,
        event_types=event_types, policy=policy, feed=feed, auditor=auditor,
        metrics=metrics, publisher=publisher, consents=consents, referrals=referrals,
        closers=tuple(closers),
    )


def router_linger(settings: Settings) -> float:
    """Seconds the router lingers for more records under steady load: on the embedded log
    only, since a Kafka consumer's fetch wait gathers batches (and its fetching pauses
    while the router holds records it has not committed)."""
    return settings.router.linger_ms / 1000 if settings.log.backend == "embedded" else 0.0


def _connector_configs(settings: Settings, roles: Roles,
                       given: Sequence[ConnectorConfig] | None
                       ) -> Sequence[ConnectorConfig] | None:
    """The connectors this process runs: those given, else those of the connectors file
    in a process that accepts events (the `api` role); None when there are none."""
    if given is not None:
        if not roles.api:
            raise ConfigError("connectors publish where events are accepted: run them in "
                              "a process with the api role")
        return given
    if settings.connectors_file is None or not roles.api:
        return None
    return load_connectors_file(settings.connectors_file)
