"""What an operator sees of each connector: its state, last error and record counts, at
`GET /v1/connectors` and as `handoff_connector_records_total{connector, outcome}`."""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from schemas.errors import HandoffError

State = Literal["starting", "running", "restarting", "failed", "stopped"]
RecordOutcomeLabel = Literal["in", "out", "duplicate", "failed"]


def describe_error(exc: BaseException) -> str:
    """An error as shown to operators: the class name, and the message only for Handoff's
    own errors, whose messages never hold record values. Other libraries' messages can
    (a database's "Key (ssn)=(…) already exists"), so they are left out."""
    if isinstance(exc, HandoffError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


class ConnectorMetrics:
    """The connector metrics of one broker, on the broker's metrics registry."""

    _by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ConnectorMetrics] = (
        weakref.WeakKeyDictionary())
    _lock = threading.Lock()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "handoff_connector_records",
            "Records through each connector: in (read or received), out (published or "
            "written), duplicate (already published), failed (dead-lettered).",
            ["connector", "outcome"], registry=registry,
        )
        self.restarts = Counter(
            "handoff_connector_restarts", "Connector restarts after a failure.",
            ["connector"], registry=registry,
        )
        self.up = Gauge(
            "handoff_connector_up", "1 while the connector is running, else 0.",
            ["connector"], registry=registry,
        )

    @classmethod
    def on(cls, registry: CollectorRegistry) -> ConnectorMetrics:
        """The one instance for `registry` (a registry refuses a metric name twice)."""
        with cls._lock:
            found = cls._by_registry.get(registry)
            if found is None:
                found = cls(registry)
                cls._by_registry[registry] = found
            return found


@dataclass
class ConnectorStatus:
    """Live status of one connector. Updated by its worker thread; read by the API."""

    name: str
    type: str
    kind: str
    state: State = "starting"
    restarts: int = 0
    last_error: str | None = None
    last_error_at_ms: int | None = None
    counts: dict[str, int] = field(default_factory=lambda: {
        "in": 0, "out": 0, "duplicate": 0, "failed": 0})
    position: dict[str, Any] | None = None
    idle: bool = False
    """True after a poll found nothing new, until one finds something."""
    since_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set_state(self, state: State) -> None:
        with self._lock:
            if state != self.state:
                self.state = state
                self.since_ms = int(time.time() * 1000)

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.last_error = describe_error(exc)
            self.last_error_at_ms = int(time.time() * 1000)

    def count(self, outcome: RecordOutcomeLabel, n: int) -> None:
        with self._lock:
            self.counts[outcome] += n

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "name": self.name, "type": self.type, "kind": self.kind,
                "state": self.state, "since_ms": self.since_ms, "restarts": self.restarts,
                "last_error": self.last_error, "last_error_at_ms": self.last_error_at_ms,
                "records": dict(self.counts), "position": self.position, "idle": self.idle,
            }
