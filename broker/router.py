"""The router: from ingress topics to per-subscription delivery topics, through policy.

For each batch it reads, the router
1. catches the consent view up with `events.consent` (so a consent or revocation that was
   accepted before an event is in force when that event is decided),
2. takes the policy in force once (a `LoadedPolicy`: bundle, engine and view schemas of
   one version) and asks its engine for a decision per matching subscription,
3. appends one audit record per decision, then the permitted views to
   `deliver.<subscription>`,
4. and only then commits its ingress offsets (on the embedded log in the transaction
   that appends the views, `AppendCommitting`; on Kafka handed to the group member to
   commit without the next poll waiting for it, `CommittingLater`).

A crash anywhere before step 4 replays the batch: decisions are re-made with the same
`decision_id`, so a replay shows up as duplicates that receivers can recognise, never
as a loss and never as a delivery without an audit record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from broker.audit import AuditEntry
from broker.auditor import Auditor
from broker.clock import now_ms
from broker.consent_feed import ConsentFeed
from broker.errors import LogError
from broker.event_types import EventTypes
from broker.linking.journal import LinkerFencedError
from broker.linking.linker import LinkedEvent
from broker.linking.stage import LinkageStage
from broker.log.port import (
    AppendCommitting,
    CommittingLater,
    Consumer,
    EventLog,
    LogRecord,
    NewRecord,
)
from broker.metrics import Metrics, latency_tally, observe_counted
from broker.policy_holder import LoadedPolicy, PolicyHolder
from broker.router_batch import EventParts, PlanFacts, RouterBatch
from broker.topics import (
    H_INGEST_EVENT_ID,
    H_INGEST_KEY_ID,
    H_INGEST_SOURCE,
    H_QUARANTINE_REASON,
    QUARANTINE,
    ROUTER_GROUP,
    delivery_topic,
    event_type_of,
    ingress_topic,
)
from linkage.errors import LinkageError
from policy import Decision, ReasonCode
from policy.consent import ConsentMatcher
from schemas.errors import DecodeError, HandoffError
from schemas.wire import WireCodec

log = logging.getLogger("handoff.router")
LAG_REFRESH_SECONDS = 0.5
TYPES_REFRESH_SECONDS = 2.0
"""How often the router reads the registry for event types other processes registered."""
REJOIN_GRACE_SECONDS = 30.0
"""How long a member without partitions waits before rejoining for new event types."""


class Router:
    def __init__(
        self,
        event_log: EventLog,
        event_types: EventTypes,
        codec: WireCodec,
        policy: PolicyHolder,
        consents: ConsentFeed,
        auditor: Auditor,
        metrics: Metrics,
        batch_size: int = 500,
        poll_timeout: float = 0.5,
        clock: Callable[[], int] = now_ms,
        linkage: LinkageStage | None = None,
        linger: float = 0.0,
    ) -> None:
        self._log = event_log
        self._committing = event_log if isinstance(event_log, AppendCommitting) else None
        self._types = event_types
        self._codec = codec
        self._policy = policy
        self._consents = consents
        self._auditor = auditor
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._linger = linger
        self._busy = False
        self._clock = clock
        self._linkage = linkage
        self._consumer: Consumer | None = None
        self._subscribed: list[str] = []
        self._types_due = 0.0
        self._joined_at = 0.0
        self._plans: dict[int, PlanFacts] = {}
        self._lag_due = 0.0
        self.healthy = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------

    def topics(self) -> list[str]:
        return [ingress_topic(t) for t in self._types.names()]

    def _ensure_consumer(self) -> Consumer:
        """The group member, subscribed to the ingress topic of every known event type.
        A type registered while running (here or, found by a periodic registry read, in
        another process) makes the router rejoin with the longer list; rejoining resumes
        at the committed offsets, which a finished batch has just committed."""
        now = time.monotonic()
        if now >= self._types_due:
            self._types_due = now + TYPES_REFRESH_SECONDS
            self._types.refresh()
        topics = self.topics()
        if self._consumer is not None and topics != self._subscribed and (
                self._consumer.assignment() or now > self._joined_at + REJOIN_GRACE_SECONDS):
            # A member that leaves a Kafka group before its join completed can hold the
            # group's next rebalance up for minutes: rejoin only once it has partitions.
            log.info("router now routes %s", ", ".join(sorted(
                set(topics) - set(self._subscribed))) or "fewer event types")
            self._drop_consumer()
        if self._consumer is None:
            self._consumer = self._log.consumer(ROUTER_GROUP, topics)
            self._subscribed = topics
            self._joined_at = now
        return self._consumer

    def _drop_consumer(self) -> None:
        # Closing and re-joining rewinds to the committed offsets, which is how a batch
        # that failed half-way is replayed.
        if self._consumer is not None:
            try:
                self._consumer.close()
            except HandoffError:
                log.warning("router consumer did not close cleanly", exc_info=True)
            self._consumer = None

    def run(self, stop: threading.Event) -> None:
        """Route until `stop` is set. Failures are logged, counted and retried."""
        backoff = 0.1
        while not stop.is_set():
            try:
                self.step()
                self.healthy.set()
                backoff = 0.1
            except LinkerFencedError as exc:
                # Another router links persons now: leave the group, so its members
                # take these partitions (the batch replays there), and stay not ready.
                self.healthy.clear()
                log.error("router stepped down: %s", exc)
                break
            except Exception:  # top-level loop: log, count, rewind and carry on
                self.healthy.clear()
                self._metrics.router_errors.inc()
                log.exception("router batch failed; replaying from the last commit")
                self._drop_consumer()
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._drop_consumer()

    # -- one batch ---------------------------------------------------------------------

    def step(self) -> int:
        """Route one polled batch; returns how many ingress records it handled."""
        consumer = self._ensure_consumer()
        records = consumer.poll(self._poll_timeout, self._batch_size)
        if records and self._busy and self._linger and len(records) < self._batch_size:
            # Under steady load a step's fixed cost (three commits, the reads) dwarfs an
            # event's: wait a moment for more, as group commit does. Not after a quiet
            # spell, so a lone event is routed at once.
            time.sleep(self._linger)
            records += consumer.poll(0, self._batch_size - len(records))
        self._busy = bool(records)
        self._consents.catch_up()
        if not records:
            self._update_lag(consumer)
            return 0
        started = time.perf_counter()
        batch = RouterBatch()
        # One version of the policy for the whole batch: a reload takes effect at the next.
        policy = self._policy.current
        if self._linkage is not None:
            self._linkage.begin(policy.bundle.linkage)
        for record in records:
            batch.offsets[(record.topic, record.partition)] = record.offset + 1
            self._route_one(record, policy, batch)
        if self._linkage is not None:
            # Person ids go on the linkage topic before anything that names them.
            self._linkage.flush()
        self._auditor.write(batch.audit)
        # Every subscription's views and the quarantined records in one append: one
        # transaction on the embedded log, one flush on Kafka.
        appends = [
            *((delivery_topic(sub_id), views) for sub_id, views in batch.deliveries.items()),
            *([(QUARANTINE, batch.quarantine)] if batch.quarantine else [])]
        if self._committing is not None:
            # With the batch's offsets in the same transaction (step 4 with step 3).
            self._committing.append_all_and_commit(appends, consumer, batch.offsets)
        else:
            self._log.append_all(appends)
        available = self._clock()
        for sub_id, ingested_at in batch.latencies.items():
            observe_counted(self._metrics.delivery_latency.labels(sub_id),
                            latency_tally(available, ingested_at))
        decided: Counter[tuple[str, str]] = Counter()
        withheld: Counter[tuple[str, ReasonCode]] = Counter()
        for facts, count in batch.plans.items():
            decided[facts.decision_key] += count
            for key, fields in facts.withheld_keys:
                withheld[key] += fields * count
        for (sub_id, outcome), count in decided.items():
            self._metrics.decisions.labels(sub_id, outcome).inc(count)
        for (sub_id, reason), count in withheld.items():
            self._metrics.fields_withheld.labels(sub_id, reason).inc(count)
        if isinstance(consumer, CommittingLater):   # Kafka: the next poll need not wait
            consumer.commit_later(batch.offsets)
        elif self._committing is None:
            consumer.commit(batch.offsets)
        self._metrics.router_batch.observe(time.perf_counter() - started)
        self._metrics.router_batch_records.observe(len(records))
        self._update_lag(consumer)
        return len(records)

    def _route_one(self, record: LogRecord, policy: LoadedPolicy, batch: RouterBatch) -> None:
        event_type = event_type_of(record.topic)
        try:
            schema_id, event = self._codec.decode(record.value)
        except DecodeError as exc:
            self._quarantine(record, event_type, f"undecodable: {exc}", batch)
            return
        registered = self._types.by_id(schema_id)
        source_raw = record.header(H_INGEST_SOURCE)
        if registered is None or source_raw is None:
            self._quarantine(record, event_type, "unknown schema id or missing source", batch,
                             event)
            return
        source = source_raw.decode()
        linked = None
        if self._linkage is not None:
            try:
                linked = self._linkage.link(event_type, source, event)
            except LinkageError as exc:
                if exc.retriable:
                    raise
                self._quarantine(record, event_type, f"linkage failed: {exc}", batch, event)
                return
        if linked is not None:
            batch.audit.extend(linked.audit)
        if not self._decide(record, event, event_type, registered.version, source, linked,
                            policy, batch):
            return
        if linked is not None and self._linkage is not None:
            for made in self._linkage.birth_matches(event_type, source, event, linked,
                                                    record.timestamp_ms, batch.audit):
                made_type = self._types.latest("birth_match")
                self._decide(record, made, "birth_match", made_type.version, source, linked,
                             policy, batch)

    def _decide(self, record: LogRecord, event: Mapping[str, Any], event_type: str,
                version: int, source: str, linked: LinkedEvent | None,
                policy: LoadedPolicy, batch: RouterBatch) -> bool:
        """Decide, audit and queue the deliveries of one event; False if quarantined."""
        consents: ConsentMatcher = self._consents.view
        subject_record = None
        if linked is not None and self._linkage is not None:
            subject = self._auditor.subject(linked.subject)
            consents = self._linkage.consents(self._consents.view)
            if linked.subject_record is not None:
                subject_record = self._auditor.subject(linked.subject_record)
        else:
            subject = self._auditor.subject(str(event["subject_id"]))
        engine = policy.engine
        try:
            subscriptions = engine.subscriptions_for(event_type, source, event)
            decisions = [
                engine.decide(event_type, version, event, source, sub.id, consents,
                              record.timestamp_ms,
                              subject=linked.subject if linked is not None else None,
                              linked_ids=linked.linked_ids if linked is not None else None)
                for sub in subscriptions
            ]
        except HandoffError as exc:
            self._quarantine(record, event_type, f"policy evaluation failed: {exc}", batch,
                             event)
            return False
        if not decisions:
            return True
        # What every decision of this event writes alike, worked out once for all of them.
        # The publishing key is the actor, so every decision traces back to a credential.
        key_id = record.header(H_INGEST_KEY_ID)
        parts = EventParts.of(record.timestamp_ms, subject, source, str(event["event_id"]),
                              key_id.decode() if key_id else "router",
                              event.get("occurred_at"), subject_record)
        batch.event_views.clear()
        for decision in decisions:
            self._plan_facts(decision, policy, event_type, version, source).record(
                decision, parts, batch)
        return True

    def _plan_facts(self, decision: Decision, policy: LoadedPolicy, event_type: str,
                    version: int, source: str) -> PlanFacts:
        plan = decision.plan
        facts = self._plans.get(id(plan))
        if facts is None or not facts.fits(plan, policy.views, event_type, version, source):
            if len(self._plans) > 10_000:   # plans of replaced bundles: let them go
                self._plans.clear()
            facts = self._plans[id(plan)] = PlanFacts.of(
                decision, policy, event_type, version, source, self._codec)
        return facts

    def _quarantine(self, record: LogRecord, event_type: str, reason: str, batch: RouterBatch,
                    event: Mapping[str, Any] | None = None) -> None:
        """Move a record the router cannot decide aside, audited with its event id: from
        the header the publisher wrote, else from the decoded event; the record says
        when neither can be read."""
        header = record.header(H_INGEST_EVENT_ID)
        event_id = (header.decode("utf-8", "replace") if header is not None
                    else str(event["event_id"]) if event is not None and "event_id" in event
                    else None)
        log.warning("quarantined %s record at partition %d offset %d: %s",
                    event_type, record.partition, record.offset, reason.split(":")[0])
        self._metrics.quarantined.labels(event_type).inc()
        batch.quarantine.append(NewRecord(
            value=record.value, key=None,
            headers=(*record.headers, (H_QUARANTINE_REASON, reason.encode()),
                     ("handoff.origin", f"{record.topic}/{record.partition}/"
                      f"{record.offset}".encode())),
        ))
        source = record.header(H_INGEST_SOURCE)
        batch.audit.append(AuditEntry(
            kind="record_quarantined", at_ms=self._clock(), outcome="quarantined",
            event_id=event_id, source=source.decode("utf-8", "replace") if source else None,
            detail={"topic": record.topic, "partition": record.partition,
                    "offset": record.offset, "reason": reason,
                    "event_id": "recorded" if event_id is not None else "unreadable"},
        ))

    def _update_lag(self, consumer: Consumer) -> None:
        # Two queries per partition: worth doing twice a second, not once per batch.
        now = time.monotonic()
        if now < self._lag_due:
            return
        self._lag_due = now + LAG_REFRESH_SECONDS
        try:
            lag = 0
            for topic, partition in consumer.assignment():
                end = self._log.end_offset(topic, partition)
                committed = consumer.committed((topic, partition)) or 0
                lag += max(0, end - committed)
            self._metrics.router_lag.set(lag)
        except LogError:
            log.debug("could not compute router lag", exc_info=True)

