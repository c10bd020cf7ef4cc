"""Prometheus metrics. Labels carry agency, subscription and event-type ids only — never
record values — so nothing personal can reach a metrics backend."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

from broker.metrics_children import ProcessesRegistry

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """All of Handoff's metrics, on a registry of their own (one per running broker),
    which also counts those of the processes it supervises (`registry.children`)."""

    def __init__(self, registry: ProcessesRegistry | None = None) -> None:
        self.registry: ProcessesRegistry = registry or ProcessesRegistry()
        r = self.registry
        self.events_ingested = Counter(
            "handoff_events_ingested", "Events accepted by the publish API.",
            ["event_type", "source"], registry=r,
        )
        self.publish_refused = Counter(
            "handoff_publish_refused", "Publish requests refused, by reason.",
            ["reason"], registry=r,
        )
        self.decisions = Counter(
            "handoff_decisions", "Policy decisions, by subscription and outcome.",
            ["subscription", "outcome"], registry=r,
        )
        self.fields_withheld = Counter(
            "handoff_fields_withheld", "Fields withheld from a delivery, by reason.",
            ["subscription", "reason"], registry=r,
        )
        self.delivery_latency = Histogram(
            "handoff_delivery_latency_seconds",
            "From ingest to the permitted view being available to the subscriber.",
            ["subscription"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.router_lag = Gauge(
            "handoff_router_lag_records", "Ingress records not yet routed.", registry=r,
        )
        self.router_batch = Histogram(
            "handoff_router_batch_seconds", "Time to route one batch, from poll to commit.",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.router_batch_records = Histogram(
            "handoff_router_batch_records", "Ingress records per routed batch.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=r,
        )
        self.router_errors = Counter(
            "handoff_router_errors", "Unexpected errors in the router loop.", registry=r,
        )
        self.quarantined = Counter(
            "handoff_records_quarantined", "Ingress records that could not be decoded.",
            ["event_type"], registry=r,
        )
        self.audit_records = Counter(
            "handoff_audit_records", "Audit records written, by kind.", ["kind"], registry=r,
        )
        self.http_requests = Counter(
            "handoff_http_requests", "HTTP requests, by route template and status.",
            ["method", "route", "status"], registry=r,
        )
        self.access_refused = Counter(
            "handoff_access_refused", "Requests refused by authentication or authorisation.",
            ["status"], registry=r,
        )
        self.stream_fallbacks = Counter(
            "handoff_stream_fallbacks", "Event streams that fell a buffer behind the shared "
            "reader and read on their own until they caught up.", ["subscription"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "handoff_webhook_attempts", "Webhook POSTs, by subscription and outcome "
            "(delivered, failed, gone).", ["subscription", "outcome"], registry=r,
        )
        self.webhook_retries = Counter(
            "handoff_webhook_retries", "Webhook attempts after an event's first.",
            ["subscription"], registry=r,
        )
        self.webhook_dead_letters = Counter(
            "handoff_webhook_dead_letters", "Deliveries moved to the dead-letter queue.",
            ["subscription"], registry=r,
        )
        self.webhook_endpoint_status = Gauge(
            "handoff_webhook_endpoint_status", "1 for the status a webhook endpoint is in "
            "(healthy, failing, disabled), 0 for the others.", ["subscription", "status"],
            registry=r,
        )
        self.linkage_resolutions = Counter(
            "handoff_linkage_resolutions", "Event subjects resolved to a person, by event "
            "type and outcome (agency_id, link, review, new_person, lookup, unresolved).",
            ["event_type", "outcome"], registry=r,
        )
        self.linkage_seconds = Histogram(
            "handoff_linkage_seconds", "Time to resolve one event's subjects to persons.",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.birth_matches = Counter(
            "handoff_birth_matches", "Births matched to the birth match list, by method.",
            ["method"], registry=r,
        )


def observe_counted(histogram: Histogram, amounts: Mapping[float, int]) -> None:
    """Observe each amount of `amounts` as many times as it counts, with one increment
    per bucket and one of the sum, not two locked increments and a bucket search per
    observation: the router observes a whole batch's latencies at once. Bucket counts are
    what `observe` one by one gives; the sum is equal up to float rounding."""
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = 0.0
    for amount, count in amounts.items():
        counts[bisect_left(bounds, amount)] += count   # the first bound >= amount
        total += amount * count
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


def latency_tally(available_ms: int, ingested_ms: list[int]) -> Tally[float]:
    """Seconds from each ingest time to `available_ms` (none below 0), counted: the
    records of one published batch share their ingest time."""
    seconds: Tally[float] = Tally()
    for at, count in Tally(ingested_ms).items():
        seconds[max(0, available_ms - at) / 1000] += count
    return seconds
