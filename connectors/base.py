"""The connector contract: what an integrator implements to move data between an agency
system and Handoff, and what the connector runtime promises in return.

There are two kinds, modelled on Kafka Connect:

- A **source** (`SourceConnector`) reads records from an agency system (a folder of
  nightly exports, an outbox table, an HTTP endpoint) and turns them into Handoff events.
  The runtime publishes them through the broker's publish path, as the connector's
  agency, exactly as if the agency had called `POST /v1/events/{type}`.
- A **sink** (`SinkConnector`) receives a subscription's deliveries (only the fields the
  policy permits) and writes them somewhere else (a webhook, a database table).

Lifecycle, for both kinds, one connector instance per configured connector, called from
one runtime thread (so a connector needs no locks of its own for these calls)::

    connector = ConnectorClass(config)       # validated pydantic config; no I/O here
    connector.start(context)                  # open connections, claim work, reconcile
    loop:
        batch = connector.poll()              # source
        connector.put(deliveries)             # sink
        ...runtime makes the batch durable, then persists the position...
        connector.commit(position, outcomes)  # position is durable now
    connector.stop()                          # always called after a successful start

What the runtime guarantees:

- **At least once.** A record is not lost once `poll` has returned it: either it is
  published (or sent to the dead-letter topic with the reason) and its position is
  committed, or the runtime crashes first and, after a restart, calls `start` with the
  last committed position so the connector reads the record again.
- **A crash replays, it does not duplicate events.** Every event gets a deterministic
  `event_id` (the record's own, or one derived from the connector name and the record's
  `source_id` or position), and the publish path is idempotent by `(agency, event_id)`,
  so a record replayed after a crash between publish and commit is recognised as a
  duplicate and not published twice. A source whose records have no stable identity
  must make its positions stable instead.
- **Order.** Events of one type are published in the order `poll` returned them, and
  batches in the order polled, so events of one type and subject keep their order in
  `events.<type>`. (Events of different types go to different topics, which the router
  reads independently, as for the HTTP API.) A sink receives each partition of its
  subscription's delivery topic in offset order.
- **Offsets are durable after commit.** When `commit(position, ...)` is called, the
  position has been written to the event log (the compacted `_connect.offsets` topic,
  keyed by connector name, on either backend) and will be given to `start` as
  `context.offset` after any restart, even after `kill -9`.
- **Bad records never block the rest.** A record that fails mapping (return a
  `Rejected`) or schema validation at publish goes to the `_connect.dead_letters`
  topic with the reason (field path and problem, never the values); the rest of the
  batch is published. Nothing is dropped silently.
- **Restarts.** If `start`, `poll`, `put` or `commit` raises, the runtime calls `stop`
  (when `start` had succeeded; errors there are logged and ignored), waits with
  exponential backoff (1 s, 2 s, 4 s … up to a minute; back to 1 s once a batch has
  been committed), builds a *new* instance from the same config and starts it from the
  last committed position, up to `max_restarts` consecutive failures.
  `FatalConnectorError` and `ConnectorConfigError` are not retried: the connector is
  marked failed. Its status (`running`, `restarting`, `failed`) and the last error are
  shown at `GET /v1/connectors` (the class name, plus the message for Handoff's own
  errors, whose messages never hold record values).

What the runtime does not guarantee:

- **Exactly once at the other system.** A sink may be given a delivery again after a
  crash (between `put` returning and the position being persisted); make writes
  idempotent with `Delivery.envelope.event_id` (and `decision_id`).
- **That `commit` is called for every batch.** If the process dies after the position is
  persisted and before `commit` returns, that `commit` is not called again. Anything
  `commit` does (acknowledging upstream, moving a finished file) must also be
  reconciled in `start` from `context.offset`.
- **That `stop` is called after a crash.** Keep durable state in the committed position
  or in the other system, never only in memory.
- **Threads of your own.** A connector that starts threads must stop them in `stop`.

Writing one: subclass `SourceConnector` or `SinkConnector`, give it a config class
derived from `SourceConfig` or `SinkConfig` with `type: Literal["my_type"]`, set the
class attribute `config_model`, and register the class under the entry-point group
`handoff.connectors` (`handoff connect new NAME` writes all of this for you).
`broker.testing.ConnectorHarness` runs it against an in-process broker in a test.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from connectors.dead_letters import FieldProblem
from connectors.errors import FatalConnectorError
from connectors.ports import DeadLetterLog, Delivery, Position, SchemaLookup

CONNECTOR_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


# -- configuration ----------------------------------------------------------------------


class ConnectorConfig(BaseModel):
    """Settings every connector has. A connector's own config subclasses `SourceConfig`
    or `SinkConfig` and narrows `type` to a literal, e.g. `type: Literal["file_drop"]`.

    Unknown keys are refused, so a typo in a connectors file is an error, not a default.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=CONNECTOR_NAME_PATTERN)
    """Unique among the connectors of one broker; keys the connector's committed offset,
    its dead letters, its metrics and its status. Renaming a connector starts it afresh."""
    type: str
    """Which connector class runs this config; a built-in type or an entry-point name."""
    max_restarts: int | None = Field(default=None, ge=0)
    """Restarts allowed after consecutive failures before the connector is marked failed
    for good; None restarts forever (with backoff)."""


class SourceConfig(ConnectorConfig):
    """Settings of every source connector."""

    agency: str = Field(min_length=1)
    """The agency the events are published as. It must exist in the policy bundle and be
    allowed to publish the event types the connector produces (`agencies.yaml`)."""
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    """How long the runtime waits before polling again after an empty poll."""


class SinkConfig(ConnectorConfig):
    """Settings of every sink connector."""

    subscription: str = Field(min_length=1)
    """The subscription whose deliveries the sink receives (`subscriptions.yaml`)."""
    batch_size: int = Field(default=100, ge=1, le=10_000)
    """The most deliveries handed to one `put` call."""
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    """Longest wait for new deliveries before `put` is skipped and the loop goes round."""


ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)


# -- what sources produce ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One event a source wants published.

    `event` is the event as JSON (what `POST /v1/events/{type}` accepts: dates as ISO
    strings are fine). `position` is where the source will be once this record and
    everything before it is done; positions must grow in the order records are returned.
    """

    event_type: str
    event: dict[str, Any]
    position: Position
    source_id: str | None = None
    """A stable identity of the record in its system (an outbox row id, a file digest
    and line). When the event has no `event_id`, the runtime derives one from the
    connector name and this (or, when None, the position), so a replay after a crash is
    recognised as a duplicate."""
    reference: str | None = None
    """A human locator for reports and dead letters ("births-0611.csv line 14", "outbox
    id 1041"). It must not contain personal data."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the source could read but not turn into an event (a mapping failed).

    The runtime sends it to the dead-letter topic with `problems` and commits past it.
    """

    position: Position
    problems: tuple[FieldProblem, ...]
    event_type: str | None = None
    source_id: str | None = None
    reference: str | None = None


Outcome = Literal["published", "duplicate", "dead_letter"]


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What became of one record of a batch, in the order `poll` returned them."""

    record: SourceRecord | Rejected
    outcome: Outcome
    event_id: str | None
    """The event id published (None for a record rejected before it had one)."""
    problems: tuple[FieldProblem, ...] = ()
    """Why a dead-lettered record was refused."""


# -- what the runtime gives a connector -------------------------------------------------


@dataclass
class ConnectorContext:
    """Handed to `start`: who the connector is and where it stands."""

    name: str
    offset: Position | None
    """The last committed position, or None on the very first start."""
    state_dir: Path
    """A private folder for files the connector needs across restarts (created for it).
    Prefer the committed position for anything that decides what to read next."""
    stopping: threading.Event
    """Set when the runtime wants the connector to stop. Long waits in `poll`/`put`
    should use `stopping.wait(seconds)` instead of `time.sleep`."""
    log: logging.Logger
    """Log here. Never log record values."""
    dead_letter: Callable[[str | None, str | None, Sequence[FieldProblem]], None] = field(
        default=lambda event_id, reference, problems: None)
    """`dead_letter(event_id, reference, problems)` records, durably, that the connector
    gave up on one item. Sources return `Rejected` instead; sinks call this for a
    delivery the destination refuses for good, before returning from `put`."""
    dead_letters: DeadLetterLog | None = None
    """The dead-letter log itself, to read back what was refused (a file-drop source
    reports its rejected rows from it). None where nothing keeps dead letters."""
    schemas: SchemaLookup | None = None
    """Where `schema(id)` looks schema ids up."""

    def schema(self, schema_id: int) -> Mapping[str, Any]:
        """The Avro schema (JSON form) of a schema id, such as the view schema a
        delivery names in `Delivery.schema_id`."""
        if self.schemas is None:
            raise FatalConnectorError("this connector needs the broker's schema registry; "
                                      "run it inside handoff serve or connect run")
        return self.schemas.schema(schema_id)


@dataclass
class SinkContext(ConnectorContext):
    """Handed to a sink's `start`."""

    subscription: str = ""
    """The subscription whose deliveries `put` receives."""


# -- the connectors ---------------------------------------------------------------------


class Connector(ABC, Generic[ConfigT]):
    """Common to sources and sinks. `config_model` is the pydantic class of the config."""

    config_model: ClassVar[type[ConnectorConfig]]
    kind: ClassVar[Literal["source", "sink"]]

    def __init__(self, config: ConfigT) -> None:
        """Keep the config. Do no I/O here: a config is also built to validate a file."""
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def start(self, context: ConnectorContext) -> None:
        """Called once before the first `poll`/`put`, in the connector's thread.

        Open connections, claim work, and reconcile anything a previous instance may
        have left half done (see the module docstring: `commit` is not guaranteed to run
        for the last batch before a crash). Raise `RetriableConnectorError` when the
        other system is unreachable; the runtime retries with backoff.
        """

    def stop(self) -> None:
        """Release connections and threads. Called after a successful `start`, when the
        runtime shuts down or before a restart; not called after a crash of the process.
        Must not raise for resources that were never opened."""


class SourceConnector(Connector[ConfigT]):
    """Reads records from an agency system; the runtime publishes them as events.

    Implement `poll`; override `start`, `commit` and `stop` as needed.
    """

    kind: ClassVar[Literal["source", "sink"]] = "source"

    @abstractmethod
    def poll(self) -> Sequence[SourceRecord | Rejected]:
        """Return the next batch of records, or an empty sequence when there is nothing
        new (the runtime then waits `poll_interval_seconds`, or until stopping).

        Called repeatedly from one thread. Return promptly (block at most about a
        second) so the runtime can stop the connector. The next `poll` comes only after
        this batch's `commit`, and continues after it. A few hundred records per batch
        is a good size; one batch is published and committed as one.

        Raising crashes the connector (see restarts in the module docstring): records of
        this call are not published and will be read again from the committed position.
        """

    def commit(self, position: Position, outcomes: Sequence[RecordOutcome]) -> None:
        """Called after a batch is published and `position` (that of the batch's last
        record) is durable in the event log.

        `outcomes` lists what became of each record of the batch, in order, including
        the dead letters and their reasons (a file-drop source writes its report from
        them). Use this to acknowledge upstream (delete or mark outbox rows, move a
        finished file). Not called again for the same batch after a crash.
        """
        del position, outcomes


class SinkConnector(Connector[ConfigT]):
    """Receives the deliveries of one subscription and writes them to another system.

    Implement `put`; override `start`, `commit` and `stop` as needed.
    """

    kind: ClassVar[Literal["source", "sink"]] = "sink"

    @abstractmethod
    def put(self, deliveries: Sequence[Delivery]) -> None:
        """Handle a batch of deliveries (permitted views with their envelopes), in
        delivery order within each partition.

        Returning means every delivery of the batch is done: written durably to the
        destination, or given up on with `context.dead_letter`. The runtime then persists
        the position after the batch. Raising crashes the connector: after a restart the
        same deliveries (and perhaps some already written) are put again, so writes must
        be idempotent by `delivery.envelope.event_id`. Block as long as needed, but
        check `context.stopping` in long retries.
        """

    def commit(self, position: Position) -> None:
        """Called after the position following a batch is durable; informational for
        most sinks (a sink that buffered in `put` must not rely on it to flush)."""
        del position


AnyConnector = SourceConnector[Any] | SinkConnector[Any]
