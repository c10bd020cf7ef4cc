"""Flow: events per type and decisions per outcome over time, delivery latency
percentiles, router lag and dead letters per subscription, from the broker's own
metrics (`broker.metrics_history`), drawn by uPlot from `/console/flow/data`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from broker.api import dependencies as deps
from broker.console.render import page
from broker.console.security import ConsoleUser, audit, console_user
from broker.metrics_history import MetricsHistory, MetricsSample, quantile

router = APIRouter(include_in_schema=False)
QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True, slots=True)
class LatencyRow:
    subscription: str
    deliveries: int
    p50: float | None
    p90: float | None
    p99: float | None


def latency_rows(sample: MetricsSample) -> list[LatencyRow]:
    rows = []
    for sub, buckets in sorted(sample.latency_buckets.items()):
        p50, p90, p99 = (quantile(buckets, q) for q in QUANTILES)
        rows.append(LatencyRow(sub, int(buckets[-1][1]) if buckets else 0, p50, p90, p99))
    return rows


def _merged(sample: MetricsSample) -> tuple[tuple[float, float], ...]:
    totals: dict[float, float] = {}
    for buckets in sample.latency_buckets.values():
        for bound, count in buckets:
            totals[bound] = totals.get(bound, 0.0) + count
    return tuple(sorted(totals.items()))


def _rates(samples: tuple[MetricsSample, ...], pick: str) -> dict[str, list[float | None]]:
    """Per minute between consecutive samples, per label."""
    labels = sorted({k for s in samples for k in getattr(s, pick)})
    series: dict[str, list[float | None]] = {label: [None] for label in labels}
    for before, after in itertools.pairwise(samples):
        minutes = max((after.at_ms - before.at_ms) / 60_000, 1e-6)
        for label in labels:
            delta = getattr(after, pick).get(label, 0.0) - getattr(before, pick).get(label, 0.0)
            series[label].append(round(max(delta, 0.0) / minutes, 2))
    return series


def flow_data(samples: tuple[MetricsSample, ...]) -> dict[str, object]:
    window: list[tuple[float, float, float]] = []
    for before, after in itertools.pairwise(samples):
        merged_before = dict(_merged(before))
        delta = tuple((b, c - merged_before.get(b, 0.0)) for b, c in _merged(after))
        p50, p90, p99 = (quantile(delta, q) for q in QUANTILES)
        window.append((p50 or 0.0, p90 or 0.0, p99 or 0.0))
    return {
        "times": [s.at_ms / 1000 for s in samples],
        "events": _rates(samples, "events_by_type"),
        "decisions": _rates(samples, "decisions_by_outcome"),
        "lag": [s.router_lag for s in samples],
        "latency": {name: [None, *(round(w[i] * 1000, 2) for w in window)]
                    for i, name in enumerate(("p50", "p90", "p99"))},
    }


@router.get("/console/flow")
def flow(request: Request, user: ConsoleUser = Depends(console_user),
         history: MetricsHistory = Depends(deps.metrics_history)) -> Response:
    samples = history.samples()
    latest = samples[-1]
    audit(request, user, "view flow")
    return page(request, user, "flow.html", "flow", latest=latest,
                latency=latency_rows(latest), since_ms=samples[0].at_ms,
                count=len(samples))


@router.get("/console/flow/data")
def data(user: ConsoleUser = Depends(console_user),
         history: MetricsHistory = Depends(deps.metrics_history)) -> Response:
    return JSONResponse(flow_data(history.samples()))
