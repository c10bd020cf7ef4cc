"""PostgreSQL source: an agency database's outbox table (or any insert-only table with an
increasing id) becomes events.

**Outbox mode** (no `mapping`): the agency's system writes, in the same transaction as
its own change, a row to

    CREATE TABLE handoff_outbox (
        id bigserial PRIMARY KEY,
        event_type text NOT NULL,
        payload jsonb NOT NULL,          -- the event, as POST /v1/events/{type} takes it
        created_at timestamptz NOT NULL DEFAULT now()
    );

**Mapped mode** (`mapping` given): each row of `table` is mapped to an event with the
declarative field mapping (columns are the source fields; jsonb columns are documents).

Rows are read in id order and the position is the last id done, so a restart resumes
after it. Event ids derive from the table and row id (unless the payload has its own
`event_id`), so rows read again after a crash are recognised as duplicates.

Ids come from a sequence, and transactions commit out of order: the row with id 12 can
become visible before the row with id 11. To never step past a row still being written,
a row is read only once every transaction older than its own has finished (its `xmin`
precedes the oldest running transaction), and reading stops at the first row that is
not yet safe. The one gap left is inside a single INSERT, between drawing the id and
writing the row; it lasts microseconds. Updates and deletes of rows already read are
not seen: this is an outbox reader, not change data capture.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr

from connectors.base import (
    ConnectorContext,
    Position,
    RecordOutcome,
    Rejected,
    SourceConfig,
    SourceConnector,
    SourceRecord,
)
from connectors.errors import FatalConnectorError, RetriableConnectorError
from connectors.mapping import FieldMapping, load_mapping


class PostgresSourceConfig(SourceConfig):
    """Settings of a PostgreSQL outbox source."""

    type: Literal["postgres_outbox"] = "postgres_outbox"
    dsn: SecretStr
    """libpq connection string or URI. Put the password in `PGPASSWORD` or a
    `.pgpass` file rather than here when you can."""
    table: str = Field(default="handoff_outbox", pattern=r"^[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*)?$")
    """Table to read, optionally schema-qualified (`cms.handoff_outbox`)."""
    id_column: str = Field(default="id", pattern=r"^[A-Za-z_][\w$]*$")
    event_type_column: str = Field(default="event_type", pattern=r"^[A-Za-z_][\w$]*$")
    payload_column: str = Field(default="payload", pattern=r"^[A-Za-z_][\w$]*$")
    mapping: Path | dict[str, Any] | None = None
    """Map whole rows with this mapping instead of reading event type and payload."""
    batch_size: int = Field(default=500, ge=1, le=10_000)
    delete_after_commit: bool = False
    """Delete outbox rows once their position is committed, keeping the table small."""
    connect_timeout_seconds: int = Field(default=10, ge=1)


class PostgresSource(SourceConnector[PostgresSourceConfig]):
    """Reads an outbox (or mapped, insert-only) table in id order."""

    config_model = PostgresSourceConfig

    def __init__(self, config: PostgresSourceConfig) -> None:
        super().__init__(config)
        self._conn: Any = None
        self._last_id: int = 0
        self._mapping: FieldMapping | None = None
        self._query: Any = None
        self._delete: Any = None

    def start(self, context: ConnectorContext) -> None:
        import psycopg
        from psycopg import sql

        cfg = self.config
        if cfg.mapping is not None:
            self._mapping = load_mapping(cfg.mapping if isinstance(cfg.mapping, dict)
                                         else Path(cfg.mapping))
        self._last_id = int(context.offset["id"]) if context.offset else 0
        table = sql.Identifier(*cfg.table.split("."))
        ident = sql.Identifier(cfg.id_column)
        # A row is safe to read once its inserting transaction precedes every running
        # one (xid arithmetic is modulo 2^32; xmin 1 and 2 are bootstrap and frozen).
        self._query = sql.SQL(
            "WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint "
            "%% 4294967296 AS sx) "
            "SELECT (t.xmin::text::bigint < 3 OR ((s.sx - t.xmin::text::bigint "
            "+ 4294967296) %% 4294967296) BETWEEN 1 AND 2147483647) AS handoff_safe, t.* "
            "FROM {table} AS t, s WHERE t.{id} > %s ORDER BY t.{id} LIMIT %s"
        ).format(table=table, id=ident)
        self._delete = sql.SQL("DELETE FROM {table} WHERE {id} <= %s").format(
            table=table, id=ident)
        try:
            self._conn = psycopg.connect(cfg.dsn.get_secret_value(), autocommit=True,
                                         connect_timeout=cfg.connect_timeout_seconds)
        except psycopg.Error as exc:
            raise _translate(exc, cfg.table) from exc
        self._check_columns()

    def _check_columns(self) -> None:
        import psycopg

        cfg = self.config
        try:
            cursor = self._conn.execute(self._query, (0, 0))
        except psycopg.Error as exc:
            raise _translate(exc, cfg.table) from exc
        columns = {c.name for c in cursor.description or ()}
        wanted = [cfg.id_column]
        if self._mapping is None:
            wanted += [cfg.event_type_column, cfg.payload_column]
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise FatalConnectorError(f"table {cfg.table} has no column "
                                      f"{', '.join(missing)}; fix the connector's config")

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def poll(self) -> Sequence[SourceRecord | Rejected]:
        import psycopg
        from psycopg.rows import dict_row

        try:
            with self._conn.cursor(row_factory=dict_row) as cursor:
                rows = cursor.execute(self._query,
                                      (self._last_id, self.config.batch_size)).fetchall()
        except psycopg.Error as exc:
            raise _translate(exc, self.config.table) from exc
        batch: list[SourceRecord | Rejected] = []
        for row in rows:
            if not row.pop("handoff_safe"):
                break  # an older transaction may still add a row before this one
            batch.append(self._record(row))
            self._last_id = int(row[self.config.id_column])
        return batch

    def _record(self, row: dict[str, Any]) -> SourceRecord | Rejected:
        cfg = self.config
        row_id = int(row[cfg.id_column])
        position: Position = {"id": row_id}
        source_id = f"{cfg.table}:{row_id}"
        reference = f"{cfg.table} {cfg.id_column} {row_id}"
        if self._mapping is not None:
            mapped = self._mapping.apply({k: _plain(v) for k, v in row.items()})
            if mapped.event is None:
                return Rejected(position, mapped.problems, self._mapping.event_type,
                                source_id, reference)
            return SourceRecord(self._mapping.event_type, mapped.event, position, source_id,
                                reference)
        event_type, payload = row.get(cfg.event_type_column), row.get(cfg.payload_column)
        if not isinstance(event_type, str) or not event_type:
            return Rejected(position, ((cfg.event_type_column, "missing"),), None,
                            source_id, reference)
        if not isinstance(payload, dict):
            return Rejected(position, ((cfg.payload_column, "expected a JSON object"),),
                            event_type, source_id, reference)
        return SourceRecord(event_type, payload, position, source_id, reference)

    def commit(self, position: Position, outcomes: Sequence[RecordOutcome]) -> None:
        if not self.config.delete_after_commit:
            return
        import psycopg

        try:
            self._conn.execute(self._delete, (int(position["id"]),))
        except psycopg.Error as exc:
            raise _translate(exc, self.config.table) from exc


def _plain(value: Any) -> Any:
    """A column value as the mapping (and JSON) expects it."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _translate(exc: Exception, table: str) -> Exception:
    """psycopg's error as ours. Server messages can quote row values, so only the
    SQLSTATE and what it means are kept."""
    import psycopg
    from psycopg import errors

    if isinstance(exc, errors.UndefinedTable):
        return FatalConnectorError(f"table {table} does not exist; create it or fix 'table'")
    if isinstance(exc, errors.UndefinedColumn):
        return FatalConnectorError(f"table {table} lacks a configured column; fix the "
                                   "connector's column settings")
    if isinstance(exc, errors.InsufficientPrivilege):
        return FatalConnectorError(f"the database user may not read table {table}; "
                                   "GRANT SELECT (and DELETE with delete_after_commit)")
    if isinstance(exc, errors.InvalidAuthorizationSpecification | errors.InvalidPassword):
        return FatalConnectorError("PostgreSQL refused the credentials in 'dsn'")
    if isinstance(exc, psycopg.OperationalError):
        return RetriableConnectorError("cannot reach PostgreSQL (connection failed or "
                                       "lost); retrying")
    sqlstate = getattr(exc, "sqlstate", None) or "unknown"
    return RetriableConnectorError(f"PostgreSQL error (SQLSTATE {sqlstate}) reading {table}")
