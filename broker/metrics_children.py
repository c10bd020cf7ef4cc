"""The metrics of processes this one supervises, added to its own.

`handoff serve` runs the router in a child process (`broker.cli.router_supervisor`):
decisions, delivery latency and router lag are counted there. `ProcessesRegistry` is the
parent's registry with the children's counts added in, as Prometheus's own
multiprocess mode would add them: samples with the same name and labels are summed
(counters, histogram buckets, sums and counts, and gauges only one process sets, such as
the router lag); `_created` is the parent's. So `/metrics` and the console's flow
charts (`broker.metrics_history`) show the installation as one process would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

log = logging.getLogger(__name__)

ChildMetrics = Callable[[], str | None]
"""A child's Prometheus text exposition now, or None when it does not answer."""


class ProcessesRegistry(CollectorRegistry):
    """A `CollectorRegistry` whose `collect` adds the families of `children`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.children: list[ChildMetrics] = []

    def collect(self) -> Iterable[Metric]:
        own = list(super().collect())
        if not self.children:
            yield from own
            return
        merged: dict[str, Metric] = {family.name: family for family in own}
        order = [family.name for family in own]
        for child in self.children:
            text = child()
            if text is None:
                continue
            try:
                families = list(text_string_to_metric_families(text))
            except ValueError as exc:
                log.warning("unreadable metrics from a child process: %s", exc)
                continue
            for family in families:
                # When a counter or histogram was created is the parent's to say; the
                # text parser reads a child's `_created` lines as families of their own.
                family.samples = [s for s in family.samples if not s.name.endswith("_created")]
                if family.name.endswith("_created") or not family.samples:
                    continue
                if family.name in merged:
                    merged[family.name] = _summed(merged[family.name], family)
                else:
                    merged[family.name] = family
                    order.append(family.name)
        for name in order:
            yield merged[name]


def _summed(ours: Metric, theirs: Metric) -> Metric:
    values: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
    for sample in (*ours.samples, *theirs.samples):
        key = (sample.name, tuple(sorted(sample.labels.items())))
        seen = values.get(key)
        if seen is None:
            values[key] = sample
        else:
            values[key] = seen._replace(value=seen.value + sample.value)
    family = Metric(ours.name, ours.documentation, ours.type, ours.unit)
    family.samples = list(values.values())
    return family
