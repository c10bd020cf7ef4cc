"""What the SDK needs from whatever runs connectors, as small protocols it owns.

The connector SDK (`connectors/`) imports nothing of the broker. A broker (or a test
double) hands connectors these things through `ConnectorContext` and function
parameters; the broker's own classes satisfy them structurally:

- `Delivery` and `Envelope`: what a sink's `put` receives;
- `SchemaLookup`: the Avro schema (JSON form) of a schema id, for `context.schema(id)`;
- `DeadLetterLog`: where refused records are written and read back;
- `OffsetStore`: where each connector's committed position is kept;
- `Ingest` and `Accepted`: publishing from a push source (one that is called, like the
  FHIR endpoint, rather than polled), all or none, as the caller the ingest is bound to.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from connectors.dead_letters import DeadLetter

Position = dict[str, Any]
"""Where a source (or sink) is: a JSON-ready mapping the connector defines and the
runtime persists verbatim, such as `{"id": 1041}` or `{"file": "b.csv", "line": 12}`."""


class Envelope(Protocol):
    """Ids and provenance of one delivery, and what the policy withheld."""

    @property
    def event_id(self) -> str: ...
    @property
    def decision_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def occurred_at_ms(self) -> int: ...
    @property
    def ingested_at_ms(self) -> int: ...
    @property
    def withheld(self) -> tuple[str, ...]: ...
    @property
    def obligations(self) -> tuple[dict[str, Any], ...]: ...


class Delivery(Protocol):
    """One permitted view of an event, as a sink receives it."""

    @property
    def envelope(self) -> Envelope: ...
    @property
    def schema_id(self) -> int:
        """The view schema the data was written with (`context.schema(schema_id)`)."""
        ...
    @property
    def data(self) -> dict[str, Any]:
        """The view as JSON: only the fields the policy released."""
        ...
    @property
    def cursor(self) -> str: ...

    def to_json(self) -> dict[str, Any]:
        """Envelope and data as one JSON document (what webhooks and pull receive)."""
        ...


class SchemaLookup(Protocol):
    def schema(self, schema_id: int) -> Mapping[str, Any]:
        """The Avro schema (JSON form) registered under `schema_id`."""
        ...


class DeadLetterLog(Protocol):
    """The durable record of what connectors gave up on, shared by every connector of
    one broker and keyed by connector name."""

    def append(self, letters: Sequence[DeadLetter]) -> None:
        """Write dead letters durably, in one append."""
        ...

    def read(self, connector: str | None = None, after: int = 0) -> Iterator[DeadLetter]:
        """Dead letters from position `after` on, optionally of one connector only."""
        ...

    def end(self) -> int:
        """The position the next dead letter will get."""
        ...


class OffsetStore(Protocol):
    """Each connector's committed position, durable once `commit` returns."""

    def get(self, connector: str) -> Position | None: ...

    def commit(self, connector: str, position: Position) -> None: ...


class Accepted(Protocol):
    """Where one published event went."""

    @property
    def event_id(self) -> str: ...
    @property
    def duplicate(self) -> bool:
        """True when the event id had been accepted before (nothing new was appended)."""
        ...

    def to_dict(self) -> dict[str, object]: ...


class Ingest(Protocol):
    """Publishing, as the agency (and credential) the ingest was handed out for."""

    def publish_all(self, groups: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
                    ) -> Sequence[Sequence[Accepted]]:
        """Publish groups of (event type, events as JSON): every event is checked first,
        and nothing is published unless all are accepted. Returns, per group, where each
        event went. Raises the broker's error naming the problem (an event type the
        agency may not publish, an event that does not match its schema)."""
        ...
