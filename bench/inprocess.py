"""An embedded broker inside the benchmark's own process, for benches that time one stage
(`Router.step`, rendering deliveries) with this process's CPU clock.

`embedded_broker(policy)` builds one (`build_broker`, real SQLite log and audit store,
`log.sync` normal, no router thread) from the policy folder `policy(workdir)` makes;
`publish` hands births to the publisher in batches of 500 as the hospital
`county-general`, and `route` steps the router until that many are routed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.auth import Principal, Role
from broker.bootstrap import Broker, build_broker
from broker.config import load_settings

BATCH = 500
HOSPITAL = Principal("bench", "county-general", frozenset({Role.PUBLISH}))


@dataclass(frozen=True)
class InProcess:
    broker: Broker

    def publish(self, births: Sequence[dict[str, Any]]) -> None:
        assert self.broker.publisher is not None
        for start in range(0, len(births), BATCH):
            self.broker.publisher.publish_json(HOSPITAL, "birth",
                                               list(births[start:start + BATCH]))

    def route(self, events: int) -> tuple[float, float]:
        """Step the router until `events` are routed; (CPU, wall) seconds it took."""
        assert self.broker.router is not None
        routed, cpu, wall = 0, time.process_time(), time.perf_counter()
        while routed < events:
            routed += self.broker.router.step()
        return time.process_time() - cpu, time.perf_counter() - wall


@contextmanager
def embedded_broker(policy: Callable[[Path], Path],
                    router_batch: int = BATCH) -> Iterator[InProcess]:
    """`router_batch`: the most records one router step takes (`router.batch_size`)."""
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        settings = load_settings(policy_dir=policy(workdir), data_dir=workdir / "data",
                                 log={"sync": "normal"},
                                 router={"batch_size": router_batch, "linger_ms": 0})
        broker = build_broker(settings, router_thread=False)
        try:
            yield InProcess(broker)
        finally:
            broker.stop()
