"""Webhook delivery: a dispatcher per subscription with `delivery: {mode: webhook}`.

Each dispatcher reads `deliver.<subscription>` from its durable cursor (in
`_webhook.state`, see `webhook_state.py`) and POSTs each delivery, signed per the
Standard Webhooks specification (`broker.delivery.webhook_sender`), in delivery order.

Ordering. A subscription's events are sent one at a time, in the order the pull API
returns them, and an event that fails blocks the ones behind it until it is delivered
or dead-lettered. Receivers therefore never see a later update of a family's record
before an earlier one; the price is that one bad event delays the rest by up to the
retry schedule (about 27 hours by default). Subscriptions do not block each other.

Failure handling, per event:

- 2xx: delivered; the cursor moves past it.
- 410 Gone: the endpoint is marked `disabled` and nothing more is sent to that URL
  (the event stays queued) until an operator re-enables it or a new policy bundle gives
  the subscription another URL.
- Anything else: retried on the schedule (`RetrySchedule`), honouring `Retry-After`.
  After the last attempt the event is appended to `deadletter.<subscription>`, audited
  (`delivery_dead_lettered`) and skipped, and the endpoint is marked `failing`. While it
  is failing, each further event gets one attempt before it is dead-lettered, so an
  endpoint that has been down for a day does not hold every later event for another
  day; the first success marks it healthy again. Dead letters are replayed through the
  API (`routes_dead_letters`).

Delivery is at least once: the cursor is saved after each batch (and after every failure
or dead letter), so a crash can resend a few events, under the same `webhook-id`.

Format. The body is the delivery as the pull API returns it (`format: json`, the
default), or, for a `referral_status` subscription with `format: fhir-task`, the status
as an SDOHCC FHIR `Task` (`application/fhir+json`, `referrals.fhir_out`): one Task id per
referral, so each status updates the same Task; fields the policy withheld are left out
or marked with a data-absent-reason.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.auditor import Auditor
from broker.delivery.cursor import Cursor
from broker.delivery.dead_letters import DeadLetterQueue
from broker.delivery.feed import Delivery, DeliveryFeed
from broker.delivery.retry_schedule import RetrySchedule
from broker.delivery.webhook_secrets import WebhookSecrets
from broker.delivery.webhook_sender import AttemptResult, WebhookSender
from broker.delivery.webhook_state import (
    CursorState,
    EndpointState,
    EndpointStatus,
    WebhookStateStore,
)
from broker.log.port import EventLog
from broker.metrics import Metrics
from broker.policy_holder import PolicyHolder
from broker.topics import delivery_topic
from referrals.fhir_out import task_from_status

log = logging.getLogger("handoff.webhooks")

SAVE_EVERY_SECONDS = 1.0
IDLE_WAIT_SECONDS = 0.5
"""Longest a dispatcher blocks at once, so it stops promptly."""
_STATUSES: tuple[EndpointStatus, ...] = ("healthy", "failing", "disabled")


@dataclass
class DispatcherParts:
    """What every dispatcher of one broker shares."""

    event_log: EventLog
    feed: DeliveryFeed
    policy: PolicyHolder
    state: WebhookStateStore
    dead_letters: DeadLetterQueue
    secrets: WebhookSecrets
    schedule: RetrySchedule
    auditor: Auditor
    metrics: Metrics
    sender_factory: Callable[[], WebhookSender]
    batch_size: int = 100
    clock: Callable[[], float] = time.time


class WebhookDispatcher:
    """Sends one subscription's deliveries to its webhook URL, in order."""

    def __init__(self, subscription_id: str, parts: DispatcherParts) -> None:
        self.subscription_id = subscription_id
        self._p = parts
        self._sender = parts.sender_factory()
        self._warned_no_secret = False
        self._endpoint: EndpointState = EndpointState()

    # -- the loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set. Failures are logged and retried with backoff."""
        backoff = 1.0
        try:
            while not stop.is_set():
                try:
                    wait = self.step(stop)
                    backoff = 1.0
                except Exception:  # top-level loop: log, count, back off and carry on
                    log.exception("webhook dispatcher for %s failed; retrying",
                                  self.subscription_id)
                    wait, backoff = backoff, min(backoff * 2, 60.0)
                if wait > 0:
                    stop.wait(wait)
        finally:
            self._sender.close()

    def step(self, stop: threading.Event | None = None) -> float:
        """Send what is due now; return how long to wait before the next step."""
        p, sub_id = self._p, self.subscription_id
        p.state.catch_up()
        sub = p.policy.current.bundle.subscriptions.get(sub_id)
        if sub is None or sub.delivery.mode != "webhook" or not sub.delivery.url:
            return 5.0    # no longer a webhook subscription in the bundle in force
        url = sub.delivery.url
        self._endpoint = p.state.endpoint(sub_id)
        if self._endpoint.status == "disabled":
            if self._endpoint.url == url:
                self._show_status()
                return 1.0
            log.info("webhook for %s has a new URL; enabling it", sub_id)
            self._set_endpoint("healthy", url, "new url")
        secrets = p.secrets.for_subscription(sub_id)
        if not secrets:
            if not self._warned_no_secret:
                log.warning("no webhook secret for subscription %s; not delivering until "
                            "one is set (docs/webhooks.md)", sub_id)
                self._warned_no_secret = True
            return 5.0
        self._warned_no_secret = False
        self._show_status()
        partitions = p.feed.partitions(sub_id)
        state = p.state.cursor(sub_id, partitions)
        due_in = (state.next_attempt_ms - self._now_ms()) / 1000
        if due_in > 0:
            return min(due_in, IDLE_WAIT_SECONDS)
        cursor = Cursor(state.offsets)
        deliveries, _ = p.feed.read(sub_id, cursor, p.batch_size)
        if not deliveries:
            p.feed.wait(sub_id, cursor, IDLE_WAIT_SECONDS)
            return 0.0
        return self._send_batch(url, secrets, deliveries, state, partitions, stop,
                                sub.delivery.format)

    def _send_batch(self, url: str, secrets: tuple, deliveries: list[Delivery],
                    state: CursorState, partitions: int, stop: threading.Event | None,
                    body_format: str = "json") -> float:
        p, sub_id = self._p, self.subscription_id
        cursor, attempts = Cursor(state.offsets), state.attempts
        saved_at, dirty = time.monotonic(), False
        for delivery in deliveries:
            if stop is not None and stop.is_set():
                break
            body, content_type = _body(delivery, body_format)
            result = self._sender.send(url, delivery.envelope.decision_id, body, secrets,
                                       content_type=content_type)
            p.metrics.webhook_attempts.labels(sub_id, result.outcome).inc()
            if attempts:
                p.metrics.webhook_retries.labels(sub_id).inc()
            if result.outcome == "delivered":
                cursor, attempts, dirty = Cursor.parse(delivery.cursor, partitions), 0, True
                if self._endpoint.status != "healthy":
                    self._set_endpoint("healthy", url, None)
                if time.monotonic() - saved_at >= SAVE_EVERY_SECONDS:
                    p.state.put_cursor(sub_id, CursorState(cursor.offsets))
                    saved_at, dirty = time.monotonic(), False
                continue
            if result.outcome == "gone":
                p.state.put_cursor(sub_id, CursorState(cursor.offsets))
                log.warning("webhook for %s answered 410 Gone; disabled until re-enabled",
                            sub_id)
                self._set_endpoint("disabled", url, result.error)
                return 0.0
            attempts += 1
            allowed = 1 if self._endpoint.status == "failing" else p.schedule.attempts
            if attempts < allowed:
                delay = p.schedule.delay_after(attempts, result.retry_after)
                p.state.put_cursor(sub_id, CursorState(
                    cursor.offsets, attempts, self._now_ms() + int(delay * 1000)))
                log.info("webhook for %s failed (%s, attempt %d of %d); retrying in %.1fs",
                         sub_id, result.error, attempts, allowed, delay)
                return 0.0
            self._dead_letter(delivery, cursor, attempts, result)
            cursor, attempts = Cursor.parse(delivery.cursor, partitions), 0
            p.state.put_cursor(sub_id, CursorState(cursor.offsets))
            saved_at, dirty = time.monotonic(), False
            if self._endpoint.status != "failing":
                self._set_endpoint("failing", url, result.error)
        if dirty:
            p.state.put_cursor(sub_id, CursorState(cursor.offsets))
        return 0.0

    # -- dead letters and endpoint state ------------------------------------------------

    def _dead_letter(self, delivery: Delivery, before: Cursor, attempts: int,
                     result: AttemptResult) -> None:
        p, sub_id = self._p, self.subscription_id
        after = Cursor.parse(delivery.cursor, len(before.offsets))
        partition = next(i for i, (a, b) in enumerate(zip(before.offsets, after.offsets,
                                                          strict=True)) if a != b)
        (record,) = p.event_log.read(delivery_topic(sub_id), partition,
                                     after.offsets[partition] - 1, 1)
        reason = result.error or "failed"
        dead_letter_id = p.dead_letters.append(sub_id, record, reason, attempts,
                                               result.status, self._now_ms())
        sub = p.policy.current.bundle.subscriptions.get(sub_id)
        subject = record.key.decode() if record.key and record.key.startswith(b"sp_") \
            else None
        e = delivery.envelope
        p.auditor.delivery_dead_lettered(
            sub_id, sub.agency if sub else None, subject, e.source, e.event_id,
            e.decision_id, dead_letter_id, attempts, reason, result.status)
        p.metrics.webhook_dead_letters.labels(sub_id).inc()
        log.warning("webhook delivery for %s dead-lettered as %d after %d attempt(s): %s",
                    sub_id, dead_letter_id, attempts, reason)

    def _set_endpoint(self, status: EndpointStatus, url: str, reason: str | None) -> None:
        self._endpoint = EndpointState(status, url, self._now_ms(), reason)
        self._p.state.put_endpoint(self.subscription_id, self._endpoint)
        self._show_status()

    def _show_status(self) -> None:
        gauge = self._p.metrics.webhook_endpoint_status
        for status in _STATUSES:
            gauge.labels(self.subscription_id, status).set(
                1 if status == self._endpoint.status else 0)

    def _now_ms(self) -> int:
        return int(self._p.clock() * 1000)


FHIR_JSON = "application/fhir+json"


def _body(delivery: Delivery, body_format: str = "json") -> tuple[bytes, str]:
    """The request body and its content type."""
    if body_format == "fhir-task" and delivery.envelope.event_type == "referral_status":
        task = task_from_status(delivery.data, receiver=delivery.envelope.source)
        return json.dumps(task, separators=(",", ":"), ensure_ascii=False).encode(), FHIR_JSON
    return json.dumps(delivery.to_json(), separators=(",", ":"),
                      ensure_ascii=False).encode(), "application/json"
