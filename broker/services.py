"""Background work of a running broker: the router thread and audit checkpoints.

What runs depends on the process's roles (`broker.roles`): the router, checkpoints and
retention run where the `router` role is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from broker.audit.checkpoints import CheckpointSigner
from broker.audit.paths import signing_key_path
from broker.delivery.webhook_service import WebhookDelivery
from broker.errors import BrokerError
from broker.retention import retention_enforcer
from broker.router import Router
from broker.runtime import Runtime
from connectors.runtime import ConnectorRuntime

log = logging.getLogger("handoff")


class Services:
    def __init__(self, runtime: Runtime, run_router: bool = True) -> None:
        self.runtime = runtime
        s = runtime.settings
        self.router = Router(
            runtime.log, runtime.event_types, runtime.codec, runtime.policy,
            runtime.consents, runtime.views, runtime.auditor, runtime.metrics,
            batch_size=s.router.batch_size, poll_timeout=s.router.poll_timeout_seconds,
        )
        # Only a routing process signs checkpoints, so only it needs the signing key.
        self.signer = (CheckpointSigner.load_or_create(signing_key_path(s.data_dir))
                       if runtime.roles.router else None)
        self.webhooks = WebhookDelivery(runtime)
        self.connectors = ConnectorRuntime.for_broker(runtime)
        self._run_router = run_router and runtime.roles.router
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        runtime.services = self

    def start(self) -> None:
        if self._run_router:
            self._spawn("handoff-router", self.router.run)
        if self.signer is not None:
            self._spawn("handoff-checkpoints", self._checkpoint_loop)
        retention = retention_enforcer(self.runtime.log, self.runtime.settings.retention,
                                       self.runtime.auditor, self.runtime.metrics.registry)
        if retention is not None and self.runtime.roles.router:
            self._spawn("handoff-retention", retention.run)
        if self.runtime.roles.delivery:
            self.webhooks.start()
        if self.connectors is not None:
            self.connectors.start()

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self._stop,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def router_healthy(self) -> bool:
        return not self._run_router or self.router.healthy.is_set()

    def _checkpoint_loop(self, stop: threading.Event) -> None:
        interval = self.runtime.settings.audit.checkpoint_interval_seconds
        while not stop.wait(interval):
            self.checkpoint()

    def checkpoint(self) -> None:
        """Sign the audit chain head, unless the latest checkpoint already covers it."""
        store = self.runtime.audit_store
        if self.signer is None:
            return
        seq, _ = store.head()
        latest = store.checkpoints()
        if seq == 0 or (latest and latest[-1].seq == seq):
            return
        try:
            self.signer.checkpoint(store)
        except BrokerError:
            log.exception("could not sign an audit checkpoint; will retry")

    def stop(self) -> None:
        if self.connectors is not None:
            self.connectors.stop()
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.webhooks.stop()
        self.checkpoint()
        rt = self.runtime
        if rt.ingest is not None:
            rt.ingest.close()
        rt.audit_store.close()
        rt.log.close()
        if rt.router_lock is not None:
            rt.router_lock.release()
