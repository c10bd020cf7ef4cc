"""Retention: records past their topic's retention are deleted and, when encrypted, made
unreadable for good by shredding their data keys.

Retention is set per event type (`events.<type>`) and per subscription
(`deliver.<subscription>`) in settings (`retention.events`, `retention.subscriptions`).
Enforcement, every `retention.interval`:

1. deletion: the embedded log deletes records older than their topic's retention; on
   Kafka the cluster does, by the topic's `retention.ms`, in its own time;
2. crypto-shredding: every data key of a retained topic whose period ended before the
   cut-off is destroyed, so whatever copies of those records remain (a Kafka segment not
   yet deleted, a backup, a disk image) can no longer be decrypted;
3. an audit record `retention_enforced` says what was deleted and shredded, by counts.

The audit log holds no payloads, so it is never touched: the chain stays verifiable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter

from broker.audit import AuditEntry
from broker.auditor import Auditor
from broker.clock import now_ms
from broker.config import RetentionSettings
from broker.crypto.encrypted_log import EncryptedEventLog
from broker.errors import LogError, UnknownTopicError
from broker.log.port import EventLog, TopicSpec
from broker.topics import delivery_topic, ingress_topic

log = logging.getLogger("handoff.retention")


@runtime_checkable
class _RetainingLog(Protocol):
    def enforce_retention(self, now_ms: int) -> int: ...


@dataclass
class RetentionReport:
    """What one enforcement pass did."""

    at_ms: int
    records_deleted: int = 0
    keys_shredded: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.records_deleted or self.keys_shredded)


def retention_targets(settings: RetentionSettings) -> dict[str, int]:
    """Topic -> retention in milliseconds."""
    targets = {ingress_topic(t): int(s * 1000) for t, s in settings.events.items()}
    targets.update({delivery_topic(s): int(v * 1000)
                    for s, v in settings.subscriptions.items()})
    return targets


class RetentionEnforcer:
    """Applies retention to the log (module docstring). Thread-safe enough to run as one
    background thread beside the router; running it in several processes at once is
    harmless (a second pass finds nothing left to do)."""

    def __init__(
        self,
        event_log: EventLog,
        settings: RetentionSettings,
        auditor: Auditor,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._log = event_log
        self._targets = retention_targets(settings)
        self._interval = float(settings.interval)
        self._auditor = auditor
        self._clock = clock
        self._deleted = Counter(
            "handoff_retention_records_deleted", "Records deleted by retention.",
            registry=registry)
        self._shredded = Counter(
            "handoff_data_keys_shredded", "Data keys destroyed by retention, by topic.",
            ["topic"], registry=registry)

    @property
    def targets(self) -> dict[str, int]:
        return dict(self._targets)

    def configure_topics(self, known: Iterable[str] | None = None) -> None:
        """Give each retained topic its retention (the embedded log deletes by it; a
        Kafka topic created earlier keeps its own `retention.ms`, and the adapter logs
        the command that changes it). Topics that do not exist are reported."""
        existing = set(known) if known is not None else set(self._log.topics())
        for topic, retention_ms in sorted(self._targets.items()):
            if topic not in existing:
                log.warning("retention is set for %s, which does not exist: check the "
                            "event type or subscription id in retention settings", topic)
                continue
            try:
                partitions = self._log.partitions(topic)
                self._log.ensure_topic(TopicSpec(topic, partitions=partitions,
                                                 retention_ms=retention_ms))
            except UnknownTopicError:
                log.warning("retention is set for %s, which does not exist", topic)

    def enforce_once(self) -> RetentionReport:
        """Delete, then shred, then audit; returns what was done."""
        now = self._clock()
        report = RetentionReport(at_ms=now)
        # Deleting first means that on the embedded log no shredded record is left to
        # be skipped by readers.
        if isinstance(self._log, _RetainingLog):
            report.records_deleted = self._log.enforce_retention(now)
        if isinstance(self._log, EncryptedEventLog):
            keyring = self._log.keyring
            for topic, retention_ms in sorted(self._targets.items()):
                shredded = keyring.shred_expired(topic, now - retention_ms)
                if shredded:
                    report.keys_shredded[topic] = len(shredded)
        if report.changed:
            self._record(report)
        return report

    def _record(self, report: RetentionReport) -> None:
        self._deleted.inc(report.records_deleted)
        for topic, count in report.keys_shredded.items():
            self._shredded.labels(topic).inc(count)
        self._auditor.write([AuditEntry(
            kind="retention_enforced", at_ms=report.at_ms, actor="broker",
            outcome="enforced",
            detail={
                "records_deleted": report.records_deleted,
                "keys_shredded": dict(sorted(report.keys_shredded.items())),
                "cutoffs_ms": {t: report.at_ms - r for t, r in sorted(self._targets.items())},
            },
        )])
        log.info("retention: %d records deleted, %d data keys shredded",
                 report.records_deleted, sum(report.keys_shredded.values()))

    def run(self, stop: threading.Event) -> None:
        """Enforce now and then every interval until `stop` is set."""
        try:
            self.configure_topics()
        except LogError:
            log.exception("could not set topic retention; enforcing by shredding only")
        while True:
            try:
                self.enforce_once()
            except Exception:  # top-level loop: log and try again next interval
                log.exception("retention enforcement failed; will retry")
            if stop.wait(self._interval):
                return


def retention_enforcer(event_log: EventLog, settings: RetentionSettings, auditor: Auditor,
                       registry: CollectorRegistry | None) -> RetentionEnforcer | None:
    """An enforcer when any retention is configured, else None."""
    if not settings.events and not settings.subscriptions:
        return None
    return RetentionEnforcer(event_log, settings, auditor, registry)
