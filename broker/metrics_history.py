"""The broker's own metrics over the last hour, for the console's flow charts.

Prometheus keeps history in a Prometheus server; a single broker may have none. This
keeps a small ring of samples of the process's own registry (every few seconds), so the
console can draw events per type, decisions per outcome, delivery latency, router lag
and dead letters over time without any other service. Labels are ids only (see
`broker.metrics`), so nothing personal is kept.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from broker.clock import Clock, now_ms

SAMPLE_SECONDS = 5.0
KEEP_SAMPLES = 720
"""An hour at the default interval."""


@dataclass(frozen=True, slots=True)
class MetricsSample:
    """Cumulative values at one instant (counters since the process started)."""

    at_ms: int
    events_by_type: dict[str, float] = field(default_factory=dict)
    decisions_by_outcome: dict[str, float] = field(default_factory=dict)
    latency_buckets: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    """Per subscription: (upper bound in seconds, cumulative count), `inf` last."""
    router_lag: float | None = None
    dead_letters: dict[str, float] = field(default_factory=dict)


def read_sample(registry: CollectorRegistry, at_ms: int) -> MetricsSample:
    """The values the charts need, read from `registry` now."""
    sample = MetricsSample(at_ms)
    buckets: dict[str, list[tuple[float, float]]] = {}
    lag: float | None = None
    for family in registry.collect():
        for s in family.samples:
            if s.name == "handoff_events_ingested_total":
                key = s.labels.get("event_type", "?")
                sample.events_by_type[key] = sample.events_by_type.get(key, 0.0) + s.value
            elif s.name == "handoff_decisions_total":
                key = s.labels.get("outcome", "?")
                sample.decisions_by_outcome[key] = (
                    sample.decisions_by_outcome.get(key, 0.0) + s.value)
            elif s.name == "handoff_delivery_latency_seconds_bucket":
                bound = float(s.labels.get("le", "inf"))
                buckets.setdefault(s.labels.get("subscription", "?"), []).append(
                    (bound, s.value))
            elif s.name == "handoff_router_lag_records":
                lag = s.value
            elif s.name == "handoff_webhook_dead_letters_total":
                sample.dead_letters[s.labels.get("subscription", "?")] = s.value
    sample.latency_buckets.update({sub: tuple(sorted(items)) for sub, items in buckets.items()})
    return MetricsSample(sample.at_ms, sample.events_by_type, sample.decisions_by_outcome,
                         sample.latency_buckets, lag, sample.dead_letters)


def quantile(buckets: tuple[tuple[float, float], ...], q: float) -> float | None:
    """The `q` quantile estimated from cumulative histogram buckets, interpolating
    linearly inside the bucket it falls in (as PromQL's histogram_quantile does)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            span = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / span
                                                          if span else 0.0)
        lower_bound, lower_count = bound, count
    return lower_bound


class MetricsHistory:
    """A `Worker` that samples the registry every `interval` seconds."""

    name = "metrics-history"

    def __init__(self, registry: CollectorRegistry, *, interval: float = SAMPLE_SECONDS,
                 keep: int = KEEP_SAMPLES, clock: Clock = now_ms) -> None:
        self._registry = registry
        self._interval = interval
        self._clock = clock
        self._samples: deque[MetricsSample] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> MetricsSample:
        taken = read_sample(self._registry, self._clock())
        with self._lock:
            self._samples.append(taken)
        return taken

    def samples(self) -> tuple[MetricsSample, ...]:
        """The samples kept, oldest first, with one taken now at the end."""
        now = read_sample(self._registry, self._clock())
        with self._lock:
            return (*self._samples, now)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="handoff-metrics-history",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def healthy(self) -> bool:
        return True
