"""Reloading the policy bundle and the keys file in a running broker.

Triggered by `POST /v1/admin/policy:reload` (an admin key) or by SIGHUP to the process.
A bundle with mistakes is refused whole: the last good bundle stays in force, `/readyz`
reports the refusal, and the audit log records it with every problem named. A bundle
that loads is appended to `_policy` and audited like the one loaded at start.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.audit import AuditEntry
from broker.auditor import Auditor
from broker.auth import FileKeyRing, KeyRing
from broker.event_types import EventTypes
from broker.log.port import EventLog, NewRecord, TopicSpec
from broker.policy_holder import PolicyHolder
from broker.topics import POLICY, delivery_topic
from schemas.catalog import SchemaCatalog
from schemas.errors import SchemaError

log = logging.getLogger("handoff")
MAX_PROBLEMS_AUDITED = 100


@dataclass(frozen=True)
class PolicyReload:
    """The outcome of a reload: the version in force and, if refused, why."""

    applied: bool
    changed: bool
    version: str
    previous: str
    problems: list[str] = field(default_factory=list)


class PolicyReloader:
    """Reads the schema folder and the policy folder again, keeps the last good bundle if
    either is refused, and makes what a new bundle needs (the ingress topics of new event
    types, the delivery topics of new subscriptions) before it routes anything."""

    def __init__(self, policy: PolicyHolder, event_log: EventLog, auditor: Auditor,
                 delivery_partitions: int, event_types: EventTypes | None = None,
                 schema_files: Callable[[], SchemaCatalog] | None = None) -> None:
        self._policy = policy
        self._log = event_log
        self._auditor = auditor
        self._partitions = delivery_partitions
        self._event_types = event_types
        self._schema_files = schema_files
        self._lock = threading.Lock()
        self.followers: list[Callable[[], None]] = []
        """Called after every reload, whatever its outcome: others that decide with the
        same policy folder reload too (the router process `handoff serve` supervises)."""

    def _register_schema_files(self) -> list[str]:
        """New event types of the schema folder, registered (each with its topics) before
        the bundle that names them is loaded. Returns the problems found, if any."""
        if self._event_types is None or self._schema_files is None:
            return []
        try:
            # Types other processes registered through the API count too.
            self._event_types.refresh()
            added = self._event_types.register_files(self._schema_files())
        except SchemaError as exc:
            return [f"schemas: {exc}"]
        if added:
            log.info("new event types from the schema folder: %s", ", ".join(added))
        return []

    def reload(self, actor: str) -> PolicyReload:
        try:
            return self._reload(actor)
        finally:
            for follow in self.followers:
                follow()

    def _reload(self, actor: str) -> PolicyReload:
        with self._lock:
            policy = self._policy
            before = policy.current.version
            schema_problems = self._register_schema_files()
            changed = policy.reload() if not schema_problems else False
            if schema_problems or policy.last_error is not None:
                problems = schema_problems or list(policy.last_problems)
                self._auditor.write([AuditEntry(
                    kind="policy_reload_refused", at_ms=self._auditor.now(), actor=actor,
                    outcome="refused",
                    detail={"bundle_version": before, "problem_count": len(problems),
                            "problems": problems[:MAX_PROBLEMS_AUDITED]},
                )])
                return PolicyReload(False, False, before, before, problems)
            bundle = policy.current.bundle
            if changed:
                for sub_id in bundle.subscriptions:
                    self._log.ensure_topic(TopicSpec(delivery_topic(sub_id),
                                                     partitions=self._partitions))
                record_policy_in_force(self._log, policy, self._auditor, actor=actor)
            return PolicyReload(True, changed, bundle.version, before)


def record_policy_in_force(event_log: EventLog, policy: PolicyHolder, auditor: Auditor,
                           actor: str = "broker") -> None:
    """Append the bundle to `_policy` and audit it, when it differs from the last one."""
    bundle = policy.current.bundle
    version = bundle.version
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
    auditor.policy_loaded(version, {
        "agencies": len(bundle.agencies), "subscriptions": len(bundle.subscriptions),
        "files": sorted(files),
    }, actor=actor)
    log.info("policy version %s in force", version)


def audit_key_changes(keyring: KeyRing, auditor: Auditor) -> None:
    """Record in the audit log which key ids a re-read keys file added, removed or
    changed (expiry, revocation, roles), as the broker saw them."""
    if not isinstance(keyring, FileKeyRing):
        return

    def record(change: dict[str, list[str]]) -> None:
        auditor.write([AuditEntry(kind="keys_changed", at_ms=auditor.now(),
                                  actor="keys_file", outcome="loaded", detail=change)])

    keyring.on_change = record


def install_sighup(reloader: PolicyReloader, keyring: KeyRing, actor: str = "sighup") -> None:
    """On SIGHUP, read the keys file and the policy folder again (main thread only);
    `actor` names who asked in the audit log."""

    def on_hup(signum: int, frame: object) -> None:
        # Signal handlers run between bytecodes of the main thread: hand the work to a
        # thread so a reload never runs inside whatever the main thread was doing.
        threading.Thread(target=_reload_all, args=(reloader, keyring, actor),
                         name="handoff-sighup", daemon=True).start()

    if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, on_hup)


def reload_keys_and_policy(reloader: PolicyReloader, keyring: KeyRing,
                           actor: str) -> PolicyReload:
    """Read the keys file, then the schema and policy folders, again."""
    reload_keys = getattr(keyring, "reload", None)
    if reload_keys is not None:
        reload_keys()
    return reloader.reload(actor=actor)


def _reload_all(reloader: PolicyReloader, keyring: KeyRing, actor: str) -> None:
    outcome = reload_keys_and_policy(reloader, keyring, actor)
    if outcome.applied:
        log.info("SIGHUP: policy version %s in force%s", outcome.version,
                 "" if outcome.changed else " (unchanged)")
