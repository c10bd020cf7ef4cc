"""Reloading the policy bundle and the keys file in a running broker.

Triggered by `POST /v1/admin/policy:reload` (an admin key) or by SIGHUP to the process.
A bundle with mistakes is refused whole: the last good bundle stays in force, `/readyz`
reports the refusal, and the audit log records it with every problem named. A bundle
that loads is appended to `_policy` and audited like the one loaded at start.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field

from broker.audit import AuditEntry
from broker.auditing import now_ms
from broker.auth import FileKeyRing
from broker.bootstrap import record_policy_in_force
from broker.log.port import TopicSpec
from broker.runtime import Runtime
from broker.topics import delivery_topic

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


_lock = threading.Lock()


def reload_policy(runtime: Runtime, actor: str) -> PolicyReload:
    """Load the policy folder again; keep the last good bundle if it is refused."""
    with _lock:
        before = runtime.policy.bundle.version
        changed = runtime.policy.reload()
        if runtime.policy.last_error is not None:
            problems = list(runtime.policy.last_problems)
            runtime.auditor.write([AuditEntry(
                kind="policy_reload_refused", at_ms=now_ms(), actor=actor,
                outcome="refused",
                detail={"bundle_version": before, "problem_count": len(problems),
                        "problems": problems[:MAX_PROBLEMS_AUDITED]},
            )])
            return PolicyReload(False, False, before, before, problems)
        bundle = runtime.policy.bundle
        if changed:
            for sub_id in bundle.subscriptions:
                runtime.log.ensure_topic(TopicSpec(
                    delivery_topic(sub_id),
                    partitions=runtime.settings.log.delivery_partitions))
            record_policy_in_force(runtime.log, runtime.policy, runtime.auditor, actor=actor)
        return PolicyReload(True, changed, bundle.version, before)


def audit_key_changes(runtime: Runtime) -> None:
    """Record in the audit log which key ids a re-read keys file added, removed or
    changed (expiry, revocation, roles), as the broker saw them."""
    keyring = runtime.keyring
    if not isinstance(keyring, FileKeyRing):
        return

    def record(change: dict[str, list[str]]) -> None:
        runtime.auditor.write([AuditEntry(kind="keys_changed", at_ms=now_ms(),
                                          actor="keys_file", outcome="loaded",
                                          detail=change)])

    keyring.on_change = record


def install_sighup(runtime: Runtime) -> None:
    """On SIGHUP, read the keys file and the policy folder again (main thread only)."""

    def on_hup(signum: int, frame: object) -> None:
        # Signal handlers run between bytecodes of the main thread: hand the work to a
        # thread so a reload never runs inside whatever the main thread was doing.
        threading.Thread(target=_reload_all, args=(runtime,), name="handoff-sighup",
                         daemon=True).start()

    if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, on_hup)


def _reload_all(runtime: Runtime) -> None:
    reload_keys = getattr(runtime.keyring, "reload", None)
    if reload_keys is not None:
        reload_keys()
    outcome = reload_policy(runtime, actor="sighup")
    if outcome.applied:
        log.info("SIGHUP: policy version %s in force%s", outcome.version,
                 "" if outcome.changed else " (unchanged)")
