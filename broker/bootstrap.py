"""The composition root: reads settings and builds the running broker's object graph.

Nothing else in the broker opens files, creates clients or reads the environment.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

from broker.audit import AuditStore, SqliteAuditStore, SubjectPseudonymizer
from broker.audit.paths import audit_db_path, pseudonym_key_path
from broker.audit.pseudonym import load_or_create_pseudonym_key
from broker.auditing import Auditor
from broker.auth import FileKeyRing, KeyRing
from broker.config import Settings
from broker.consent_feed import ConsentFeed
from broker.consent_recording import ConsentRecording
from broker.delivery.feed import DeliveryFeed
from broker.errors import ConfigError
from broker.event_types import EventTypes
from broker.ingest.group_commit import GroupCommitter
from broker.ingest.idempotency import IdempotencyIndex, SqliteIdempotencyIndex
from broker.ingest.publisher import Publisher
from broker.log.encrypted import encrypt_if_enabled, register_encryption_metrics
from broker.log.port import EventLog, NewRecord, TopicSpec
from broker.metrics import Metrics
from broker.policy_holder import PolicyHolder
from broker.registry_store import LogRegistryStore
from broker.roles import Roles, RouterLock
from broker.runtime import IngestPath, Runtime
from broker.topics import POLICY, QUARANTINE, delivery_topic, ingress_topic
from broker.view_schemas import ViewSchemas
from schemas.catalog import SchemaCatalog
from schemas.registry import SchemaRegistry
from schemas.wire import WireCodec

log = logging.getLogger("handoff")


def open_event_log(settings: Settings) -> EventLog:
    """The configured event log; protected topics encrypted when `encryption.enabled`."""
    return encrypt_if_enabled(_open_plain_log(settings), settings.encryption, os.environ)


def _open_plain_log(settings: Settings) -> EventLog:
    if settings.log.backend == "embedded":
        from broker.log.sqlite import SqliteEventLog

        return SqliteEventLog(settings.data_dir / "log.db", sync=settings.log.sync,
                              cross_process_poll_s=settings.log.cross_process_poll_ms / 1000)
    from broker.log.kafka import KafkaEventLog

    return KafkaEventLog.from_settings(settings.kafka, client_id=f"handoff-{os.getpid()}")


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    """A random key kept in the data directory, created on first start (mode 0600)."""
    if path.exists():
        key = path.read_bytes()
        if len(key) < 16:
            raise ConfigError(f"{path}: key file is too short; restore it from backup")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(size)
    # Written aside and linked into place, so processes starting together on one data
    # directory agree on one key and none reads a half-written file.
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    try:
        os.link(draft, path)
    except FileExistsError:
        key = path.read_bytes()
    finally:
        draft.unlink()
    return key


def build_runtime(settings: Settings, roles: Roles | None = None) -> Runtime:
    """Build what a process with `roles` (default: every role) needs."""
    roles = roles or Roles.all()
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    if not settings.policy_dir.is_dir():
        raise ConfigError(f"{settings.policy_dir}: policy folder not found; pass --policy DIR")
    # The embedded log's consumer group lives inside one process: one router per data dir.
    router_lock = (RouterLock(data) if roles.router and settings.log.backend == "embedded"
                   else None)
    metrics = Metrics()
    event_log = open_event_log(settings)
    register_encryption_metrics(event_log, metrics.registry)
    registry = SchemaRegistry(LogRegistryStore(event_log))
    codec = WireCodec(registry, max_bytes=settings.api.max_body_bytes)
    event_types = EventTypes(registry, SchemaCatalog.load())
    for event_type in event_types.names():
        event_log.ensure_topic(TopicSpec(ingress_topic(event_type),
                                         partitions=settings.log.ingress_partitions))
    event_log.ensure_topic(TopicSpec(QUARANTINE))
    event_log.ensure_topic(TopicSpec(POLICY))

    policy = PolicyHolder(settings.policy_dir, event_types.catalog,
                          load_or_create_secret(data / "keys" / "policy-pseudonym.key"))
    for sub_id in policy.bundle.subscriptions:
        event_log.ensure_topic(TopicSpec(delivery_topic(sub_id),
                                         partitions=settings.log.delivery_partitions))

    audit_store = open_audit_store(settings, event_log, roles)
    pseudonymizer = SubjectPseudonymizer(load_or_create_pseudonym_key(pseudonym_key_path(data)))
    auditor = Auditor(audit_store, pseudonymizer, metrics)
    record_policy_in_force(event_log, policy, auditor)

    consents = ConsentFeed(event_log, codec)
    if roles.router:
        consents.catch_up()
    ingest = None
    if roles.api:
        idempotency = open_idempotency_index(settings, event_log)
        committer = GroupCommitter(event_log, idempotency)
        ingest = IngestPath(idempotency, committer,
                            Publisher(event_types, codec, committer, auditor, metrics,
                                      ConsentRecording(policy, consents, auditor)))
    return Runtime(
        settings=settings,
        log=event_log,
        registry=registry,
        event_types=event_types,
        codec=codec,
        policy=policy,
        consents=consents,
        views=ViewSchemas(registry, policy),
        audit_store=audit_store,
        auditor=auditor,
        feed=DeliveryFeed(event_log, codec, registry),
        metrics=metrics,
        # A process agencies never call does not need (or get) the keys file.
        keyring=(FileKeyRing(settings.resolved_keys_file) if roles.serves_clients
                 else KeyRing()),
        ingest=ingest,
        roles=roles,
        router_lock=router_lock,
    )


def open_audit_store(settings: Settings, event_log: EventLog, roles: Roles) -> AuditStore:
    """The audit log: one hash chain in `audit.db` beside the embedded log; with the
    Kafka log, in Kafka, one chain per process (named after its roles), with a local
    index in the data directory that is only a cache."""
    if settings.log.backend == "kafka":
        from broker.audit.kafka_store import KafkaAuditStore

        return KafkaAuditStore(event_log, settings.data_dir / "audit-index.db",
                               writer=str(roles).replace(",", "-"))
    return SqliteAuditStore(audit_db_path(settings.data_dir))


def open_idempotency_index(settings: Settings, event_log: EventLog) -> IdempotencyIndex:
    """Which events were accepted: `ingress.db` beside the embedded log; with the Kafka
    log, the compacted `_accepted` topic shared by every API process, cached locally."""
    if settings.log.backend == "kafka":
        from broker.ingest.kafka_idempotency import KafkaIdempotencyIndex

        return KafkaIdempotencyIndex(event_log, settings.data_dir / "accepted-cache.db")
    return SqliteIdempotencyIndex(settings.data_dir / "ingress.db")


def record_policy_in_force(event_log: EventLog, policy: PolicyHolder, auditor: Auditor,
                           actor: str = "broker") -> None:
    """Append the bundle to `_policy` and audit it, when it differs from the last one."""
    version = policy.bundle.version
    end = event_log.end_offset(POLICY, 0)
    if end:
        last = event_log.read(POLICY, 0, end - 1, 1)
        if last and json.loads(last[0].value).get("version") == version:
            return
    files = {
        str(p.relative_to(policy.directory)): p.read_text(encoding="utf-8")
        for p in sorted(policy.directory.rglob("*.yaml"))
    }
    doc = {"version": version, "files": files}
    event_log.append(POLICY, [NewRecord(value=json.dumps(doc).encode(),
                                        key=version.encode())])
    bundle = policy.bundle
    auditor.policy_loaded(version, {
        "agencies": len(bundle.agencies), "subscriptions": len(bundle.subscriptions),
        "files": sorted(files),
    }, actor=actor)
    log.info("policy version %s in force", version)
