"""The webhook delivery component of a running broker: one dispatcher thread per webhook
subscription, started and stopped with the broker (`broker.services`).

Run it in one process per broker (the process that runs delivery): two processes
dispatching the same subscription would both send every event.
"""

from __future__ import annotations

import logging
import threading

from broker.delivery.dead_letters import DeadLetterQueue
from broker.delivery.retry_schedule import RetrySchedule
from broker.delivery.webhook_secrets import WebhookSecrets
from broker.delivery.webhook_state import WebhookStateStore
from broker.delivery.webhooks import DispatcherParts, WebhookDispatcher
from broker.runtime import Runtime
from connectors.webhook_sink import WebhookSender

log = logging.getLogger("handoff.webhooks")
SECRETS_FILE = "webhook-secrets.yaml"
SYNC_SECONDS = 2.0
"""How often the set of webhook subscriptions is compared with the bundle in force."""


def webhook_secrets(runtime: Runtime) -> WebhookSecrets:
    """The secrets store the settings describe."""
    s = runtime.settings
    path = s.webhooks.secrets_file or s.data_dir / SECRETS_FILE
    configured = {sub: [v.get_secret_value() for v in values]
                  for sub, values in s.webhooks.secrets.items()}
    return WebhookSecrets(path, configured)


class WebhookDelivery:
    """Starts a `WebhookDispatcher` for every subscription whose delivery mode is
    `webhook`, including ones a reloaded policy bundle adds."""

    def __init__(self, runtime: Runtime) -> None:
        w = runtime.settings.webhooks
        self.enabled = w.enabled
        self.parts = DispatcherParts(
            event_log=runtime.log, feed=runtime.feed, policy=runtime.policy,
            state=WebhookStateStore(runtime.log), dead_letters=DeadLetterQueue(runtime.log),
            secrets=webhook_secrets(runtime),
            schedule=RetrySchedule.of(w.schedule_seconds, w.jitter, w.max_retry_after_seconds),
            auditor=runtime.auditor, metrics=runtime.metrics,
            sender_factory=lambda: WebhookSender(timeout=w.timeout_seconds),
        )
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        if not self.enabled:
            log.info("webhook delivery is turned off (webhooks.enabled = false)")
            return
        self._sync()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name="handoff-webhooks")
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stop.wait(SYNC_SECONDS):
            try:
                self._sync()
            except Exception:  # top-level loop: log and try again at the next sync
                log.exception("could not start webhook dispatchers; will retry")

    def _sync(self) -> None:
        for sub in self.parts.policy.bundle.subscriptions.values():
            if sub.delivery.mode != "webhook" or sub.id in self._threads:
                continue
            self.parts.dead_letters.ensure(sub.id)
            dispatcher = WebhookDispatcher(sub.id, self.parts)
            thread = threading.Thread(target=dispatcher.run, args=(self._stop,),
                                      daemon=True, name=f"handoff-webhook-{sub.id}")
            thread.start()
            self._threads[sub.id] = thread
            log.info("webhook delivery for %s started", sub.id)

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._supervisor, *self._threads.values()):
            if thread is not None:
                thread.join(timeout=20)
