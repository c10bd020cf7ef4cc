"""Opening a process's stores, key files and the event log, for the composition root
(`broker.bootstrap`) and the few commands that read an installation without running a
broker (`handoff report`, `handoff encryption`)."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from broker.audit import (
    AuditStore,
    AuditVerifier,
    SqliteAuditStore,
    SqliteAuditVerifier,
)
from broker.audit.paths import (
    KAFKA_INDEX_NAME,
    audit_db_path,
)
from broker.config import Settings
from broker.crypto.at_rest import encrypt_if_enabled
from broker.errors import ConfigError
from broker.ingest.idempotency import IdempotencyIndex, SqliteIdempotencyIndex
from broker.log.port import EventLog
from broker.referral_feed import LEDGER_FILE, LOCK_FILE, ReferralFeed
from broker.referral_service import ReferralService
from broker.referral_store import SqliteLedgerStore
from broker.registry_store import LogRegistryStore
from broker.roles import Roles
from policy import load_bundle
from schemas.catalog import BUILTIN_DIR, SchemaCatalog
from schemas.registry import SchemaRegistry
from schemas.wire import WireCodec

log = logging.getLogger("handoff")


def event_schema_files(settings: Settings) -> SchemaCatalog:
    """The shipped event schemas and those of the `schema_dir` setting, read now.
    Raises `SchemaError` naming each file with a problem."""
    return SchemaCatalog.load_all(BUILTIN_DIR, *(
        [settings.schema_dir] if settings.schema_dir is not None else []))


def open_event_log(settings: Settings) -> EventLog:
    """The configured event log; protected topics encrypted when `encryption.enabled`."""
    return encrypt_if_enabled(_open_plain_log(settings), settings.encryption, os.environ)


def _open_plain_log(settings: Settings) -> EventLog:
    if settings.log.backend == "embedded":
        from broker.log.sqlite import SqliteEventLog

        return SqliteEventLog(settings.data_dir / "log.db", sync=settings.log.sync,
                              cross_process_poll_s=settings.log.cross_process_poll_ms / 1000,
                              doorbell=settings.log.doorbell,
                              safety_poll_s=settings.log.doorbell_poll_ms / 1000)
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


def open_audit_store(settings: Settings, event_log: EventLog, roles: Roles) -> AuditStore:
    """The audit log: one hash chain in `audit.db` beside the embedded log; with the
    Kafka log, in Kafka, one chain per process (named after its roles), with a local
    index in the data directory that is only a cache."""
    if settings.log.backend == "kafka":
        from broker.audit.kafka_store import KafkaAuditStore

        return KafkaAuditStore(event_log, settings.data_dir / "audit-index.db",
                               writer=str(roles).replace(",", "-"))
    return SqliteAuditStore(audit_db_path(settings.data_dir))


def audit_verifier(settings: Settings, event_log: EventLog, store: AuditStore
                   ) -> AuditVerifier | None:
    """What re-walks this process's audit log (the console's integrity page)."""
    if settings.log.backend == "kafka":
        from broker.audit.kafka_verify import KafkaAuditVerifier

        return KafkaAuditVerifier(event_log, settings.data_dir / KAFKA_INDEX_NAME)
    if isinstance(store, SqliteAuditStore):
        return SqliteAuditVerifier(store)
    return None


def open_referral_reports(settings: Settings) -> tuple[ReferralService, Callable[[], None]]:
    """The referral ledger's reports over an installation's data directory and log,
    without running a broker (`handoff report`): the ledger file is caught up with the
    log, as a running broker would, before each report. Returns the service and what
    closes it."""
    if not settings.data_dir.is_dir():
        raise ConfigError(f"{settings.data_dir}: data directory not found; pass --data DIR")
    if not settings.policy_dir.is_dir():
        raise ConfigError(f"{settings.policy_dir}: policy folder not found; pass --policy DIR")
    bundle = load_bundle(settings.policy_dir, SchemaCatalog.load())
    event_log = open_event_log(settings)
    try:
        codec = WireCodec(SchemaRegistry(LogRegistryStore(event_log)),
                          max_bytes=settings.api.max_body_bytes)
        store = SqliteLedgerStore(settings.data_dir / LEDGER_FILE)
    except BaseException:
        event_log.close()
        raise
    feed = ReferralFeed(event_log, codec, store, lambda: bundle,
                        settings.data_dir / LOCK_FILE)

    def close() -> None:
        store.close()
        event_log.close()

    return ReferralService(feed, settings.referrals), close


def open_idempotency_index(settings: Settings, event_log: EventLog) -> IdempotencyIndex:
    """Which events were accepted: `ingress.db` beside the embedded log; with the Kafka
    log, the compacted `_accepted` topic shared by every API process, cached locally."""
    if settings.log.backend == "kafka":
        from broker.ingest.kafka_idempotency import KafkaIdempotencyIndex

        return KafkaIdempotencyIndex(event_log, settings.data_dir / "accepted-cache.db")
    return SqliteIdempotencyIndex(settings.data_dir / "ingress.db", event_log)
