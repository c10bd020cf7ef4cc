"""The serving process's `/metrics` counts what its router process counted too."""

from __future__ import annotations

from prometheus_client import generate_latest

from broker.metrics import Metrics
from broker.metrics_history import read_sample


def child_metrics() -> Metrics:
    child = Metrics()
    child.decisions.labels("hv-births", "permit").inc(3)
    child.delivery_latency.labels("hv-births").observe(0.004)
    child.router_lag.set(7)
    child.audit_records.labels("decision").inc(3)
    return child


def test_the_router_process_counts_are_added_to_the_parents():
    parent, child = Metrics(), child_metrics()
    parent.events_ingested.labels("birth", "county-general").inc(3)
    parent.audit_records.labels("decision").inc(1)  # both count: summed
    parent.registry.children.append(lambda: generate_latest(child.registry).decode())

    text = generate_latest(parent.registry).decode()

    assert 'handoff_decisions_total{outcome="permit",subscription="hv-births"} 3.0' in text
    assert 'handoff_events_ingested_total{event_type="birth",source="county-general"} 3.0' \
        in text
    assert 'handoff_audit_records_total{kind="decision"} 4.0' in text
    assert "handoff_router_lag_records 7.0" in text
    assert text.count("# TYPE handoff_decisions_total counter") == 1
    assert text.count("# HELP handoff_router_lag_records ") == 1
    assert text.count("\nhandoff_router_batch_seconds_created ") == 1
    types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))  # each family once


def test_the_flow_charts_read_the_router_process_counts():
    parent, child = Metrics(), child_metrics()
    parent.registry.children.append(lambda: generate_latest(child.registry).decode())

    sample = read_sample(parent.registry, at_ms=1)

    assert sample.decisions_by_outcome == {"permit": 3.0}
    assert sample.router_lag == 7.0
    assert dict(sample.latency_buckets["hv-births"])[0.005] == 1.0


def test_a_router_process_that_does_not_answer_leaves_the_parents_own_metrics():
    parent = Metrics()
    parent.events_ingested.labels("birth", "county-general").inc()
    parent.registry.children.append(lambda: None)

    text = generate_latest(parent.registry).decode()

    assert 'handoff_events_ingested_total{event_type="birth",source="county-general"} 1.0' \
        in text
