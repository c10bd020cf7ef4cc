"""The webhook delivery worker of a running broker: one dispatcher thread per webhook
subscription, started and stopped with the broker (a `broker.workers.Worker`).

Run it in one process per broker (the process that runs delivery): two processes
dispatching the same subscription would both send every event.
"""

from __future__ import annotations

import logging
import threading

from broker.delivery.webhooks import DispatcherParts, WebhookDispatcher

log = logging.getLogger("handoff.webhooks")
SYNC_SECONDS = 2.0
"""How often the set of webhook subscriptions is compared with the bundle in force."""


class WebhookDelivery:
    """Starts a `WebhookDispatcher` for every subscription whose delivery mode is
    `webhook`, including ones a reloaded policy bundle adds."""

    name = "webhooks"

    def __init__(self, parts: DispatcherParts, enabled: bool = True) -> None:
        self.enabled = enabled
        self.parts = parts
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
        for sub in self.parts.policy.current.bundle.subscriptions.values():
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

    def healthy(self) -> bool:
        """Endpoints fail on their own (`GET .../webhook` says so); delivery goes on."""
        return True
