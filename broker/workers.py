"""Background work of a broker process, as `Worker`s that bootstrap lists in order.

A worker is anything with a `name`, `start()`, `stop()` and `healthy()`. Bootstrap
builds the workers a process's roles call for (`broker.bootstrap.build_broker`);
`Workers` starts them in that order and stops them in reverse, so a worker may rely on
every worker listed before it (the checkpoint signer is listed before the router, and
so signs a last checkpoint after the router's last batch). `/readyz` reports each by
name. Today every worker is a thread of the process (`ThreadWorker`, or a class of its
own with threads inside); a worker that runs in a supervised process of its own keeps
the same four members.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

log = logging.getLogger("handoff")


class Worker(Protocol):
    @property
    def name(self) -> str:
        """Short and stable: it names the worker in `/readyz` and in logs."""
        ...

    def start(self) -> None:
        """Begin work in the background and return."""
        ...

    def stop(self) -> None:
        """Finish, and return once the work has ended. Safe when never started, and
        safe to call twice."""
        ...

    def healthy(self) -> bool:
        """False while the worker is failing (it keeps retrying)."""
        ...


def always_healthy() -> bool:
    return True


class ThreadWorker:
    """Runs `loop(stop)` in a daemon thread until `stop` is set; the loop handles (logs,
    counts, retries) its own failures."""

    def __init__(self, name: str, loop: Callable[[threading.Event], None], *,
                 healthy: Callable[[], bool] = always_healthy, join_seconds: float = 10.0
                 ) -> None:
        self._name = name
        self._loop = loop
        self._healthy = healthy
        self._join_seconds = join_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, args=(self._stop,),
                                        name=f"handoff-{self._name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._join_seconds)

    def healthy(self) -> bool:
        return self._healthy()


class Workers:
    """The workers of one process, in start order."""

    def __init__(self, workers: Sequence[Worker]) -> None:
        self.all: tuple[Worker, ...] = tuple(workers)

    def start(self) -> None:
        for worker in self.all:
            worker.start()

    def stop(self) -> None:
        for worker in reversed(self.all):
            try:
                worker.stop()
            except Exception:  # shutting down: stop the others whatever one does
                log.exception("worker %s did not stop cleanly", worker.name)

    def health(self) -> dict[str, bool]:
        """Each worker's name and whether it is healthy."""
        return {worker.name: worker.healthy() for worker in self.all}
