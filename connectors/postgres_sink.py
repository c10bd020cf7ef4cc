"""PostgreSQL sink: a subscription's permitted views, upserted into a table.

Each delivery becomes one row keyed by the source event's `event_id`, so a delivery put
again (after a crash, or a replay) rewrites the same row instead of adding one. Columns:

| column | holds |
|---|---|
| `event_id` | text, primary key |
| `decision_id`, `event_type`, `source` | text, from the delivery's envelope |
| `received_at` | timestamptz, when the row was first written (kept on upserts) |
| `withheld` | jsonb, the field paths the policy withheld from this subscriber |
| one per view field | dotted paths in snake case: `mother.first_name` → `mother_first_name` |

View columns come from the subscription's view schema (the Avro schema every delivery
names): text for strings and enums, integer/bigint, double precision, boolean, date,
timestamptz for timestamps, numeric for decimals, jsonb for arrays, maps and unions of
several types. A view field whose column name is taken by an envelope column is stored
as `view_<name>`. Withheld fields arrive null.

The table is created when missing, and a column the view gains (after a policy change)
is added, unless `create_table` is false, in which case a missing table or column stops
the connector with a message saying what to create. A row the database refuses for good
(a value that does not fit a column someone altered by hand) is dead-lettered with the
column's name and the SQLSTATE, and the rest of the batch is written.

    connectors:
      - name: hv-births-warehouse
        type: postgres_sink
        subscription: hv-births
        dsn: "host=db.nfp.example port=5432 dbname=warehouse user=handoff"
        table: handoff.births
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr

from connectors.base import ConnectorContext, SinkConfig, SinkConnector
from connectors.errors import FatalConnectorError, RetriableConnectorError

if TYPE_CHECKING:
    import psycopg

    from connectors.ports import Delivery

_IDENT = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
ENVELOPE_COLUMNS = ("event_id", "decision_id", "event_type", "source", "received_at",
                    "withheld")


class PostgresSinkConfig(SinkConfig):
    """Settings of a PostgreSQL sink."""

    type: Literal["postgres_sink"] = "postgres_sink"
    dsn: SecretStr
    """libpq connection string or URI (prefer `PGPASSWORD` or `.pgpass` for the password)."""
    table: str = Field(pattern=rf"^({_IDENT}\.)?{_IDENT}$")
    """`table` or `schema.table`."""
    create_table: bool = True
    """Create the table and add new view columns when missing."""
    connect_timeout_seconds: int = Field(default=10, ge=1)


@dataclass(frozen=True, slots=True)
class Column:
    path: tuple[str, ...]
    """Where the value sits in the delivery's `data`."""
    name: str
    sql_type: str
    json: bool = False
    """Sent as jsonb."""


class PostgresSink(SinkConnector[PostgresSinkConfig]):
    """Upserts deliveries into a table, idempotent by `event_id`."""

    config_model = PostgresSinkConfig

    def __init__(self, config: PostgresSinkConfig) -> None:
        super().__init__(config)
        self._conn: psycopg.Connection[Any] | None = None
        self._context: ConnectorContext | None = None
        self._columns_by_schema: dict[int, tuple[Column, ...]] = {}
        self._table_columns: set[str] | None = None

    def start(self, context: ConnectorContext) -> None:
        import psycopg

        if context.schemas is None:
            raise FatalConnectorError("the PostgreSQL sink needs the broker's schema "
                                      "registry; run it inside handoff serve or connect run")
        self._context = context
        try:
            self._conn = psycopg.connect(self.config.dsn.get_secret_value(),
                                         connect_timeout=self.config.connect_timeout_seconds)
        except psycopg.Error as exc:
            raise _translate(exc, self.config.table) from exc
        self._table_columns = self._existing_columns()
        if self._table_columns is None:
            if not self.config.create_table:
                raise FatalConnectorError(
                    f"table {self.config.table} does not exist; create it or set "
                    "create_table: true")
            self._create_table()

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def put(self, deliveries: Sequence[Delivery]) -> None:
        import psycopg

        assert self._conn is not None and self._context is not None
        rows = [(d, self._columns(d.schema_id)) for d in deliveries]
        try:
            self._ensure_columns({c for _, cols in rows for c in cols})
            with self._conn.transaction():
                for delivery, cols in rows:
                    self._upsert(delivery, cols)
        except psycopg.DataError:
            # One row does not fit: write the others one by one, dead-letter the misfits.
            self._put_one_by_one(rows)
        except psycopg.Error as exc:
            raise _translate(exc, self.config.table) from exc

    # -- writing ---------------------------------------------------------------------

    def _upsert(self, delivery: Delivery, cols: tuple[Column, ...]) -> None:
        from psycopg import sql
        from psycopg.types.json import Jsonb

        assert self._conn is not None
        e = delivery.envelope
        names = ["event_id", "decision_id", "event_type", "source", "withheld",
                 *(c.name for c in cols)]
        values: list[Any] = [e.event_id, e.decision_id, e.event_type, e.source,
                             Jsonb(list(e.withheld))]
        for column in cols:
            value = _dig(delivery.data, column.path)
            values.append(Jsonb(value) if column.json and value is not None else value)
        updates = [n for n in names if n != "event_id"]
        statement = sql.SQL(
            "INSERT INTO {table} ({names}) VALUES ({params}) "
            "ON CONFLICT (event_id) DO UPDATE SET {updates}"
        ).format(
            table=self._table_sql(), names=sql.SQL(", ").join(map(sql.Identifier, names)),
            params=sql.SQL(", ").join(sql.Placeholder() * len(names)),
            updates=sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n)) for n in updates),
        )
        self._conn.execute(statement, values)

    def _put_one_by_one(self, rows: list[tuple[Delivery, tuple[Column, ...]]]) -> None:
        import psycopg

        assert self._conn is not None and self._context is not None
        for delivery, cols in rows:
            try:
                with self._conn.transaction():
                    self._upsert(delivery, cols)
            except psycopg.DataError as exc:
                column = getattr(exc.diag, "column_name", None) or "<row>"
                self._context.dead_letter(
                    delivery.envelope.event_id, f"decision {delivery.envelope.decision_id}",
                    [(column, f"PostgreSQL refused the value (SQLSTATE {exc.sqlstate})")])
            except psycopg.Error as exc:
                raise _translate(exc, self.config.table) from exc

    # -- the table -------------------------------------------------------------------

    def _table_sql(self) -> Any:
        from psycopg import sql

        return sql.SQL(".").join(map(sql.Identifier, self.config.table.split(".")))

    def _existing_columns(self) -> set[str] | None:
        assert self._conn is not None
        schema, _, table = self.config.table.rpartition(".")
        rows = self._conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = %s AND table_schema = COALESCE(NULLIF(%s, ''), "
            "current_schema())", (table, schema)).fetchall()
        self._conn.commit()
        return {r[0] for r in rows} or None

    def _create_table(self) -> None:
        from psycopg import sql

        assert self._conn is not None
        with self._conn.transaction():
            self._conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (event_id text PRIMARY KEY, "
                "decision_id text NOT NULL, event_type text NOT NULL, source text NOT NULL, "
                "received_at timestamptz NOT NULL DEFAULT now(), "
                "withheld jsonb NOT NULL DEFAULT '[]')").format(self._table_sql()))
        self._table_columns = set(ENVELOPE_COLUMNS)

    def _ensure_columns(self, columns: set[Column]) -> None:
        from psycopg import sql

        assert self._conn is not None and self._table_columns is not None
        missing = sorted((c for c in columns if c.name not in self._table_columns),
                         key=lambda c: c.name)
        if not missing:
            return
        if not self.config.create_table:
            raise FatalConnectorError(
                f"table {self.config.table} lacks column(s) "
                f"{', '.join(c.name for c in missing)} of the subscription's view; add them "
                "or set create_table: true")
        with self._conn.transaction():
            for column in missing:
                self._conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}")
                                   .format(self._table_sql(), sql.Identifier(column.name),
                                           sql.SQL(column.sql_type)))
        self._table_columns |= {c.name for c in missing}

    def _columns(self, schema_id: int) -> tuple[Column, ...]:
        found = self._columns_by_schema.get(schema_id)
        if found is None:
            assert self._context is not None
            schema = self._context.schema(schema_id)
            found = self._columns_by_schema[schema_id] = tuple(view_columns(schema))
        return found


# -- view schema → columns ----------------------------------------------------------------

_PRIMITIVES = {"string": "text", "int": "integer", "long": "bigint", "float": "real",
               "double": "double precision", "boolean": "boolean", "bytes": "text",
               "enum": "text", "fixed": "text"}
_LOGICAL = {"date": "date", "timestamp-millis": "timestamptz",
            "timestamp-micros": "timestamptz", "local-timestamp-millis": "timestamp",
            "local-timestamp-micros": "timestamp", "time-millis": "time",
            "time-micros": "time", "decimal": "numeric", "uuid": "text"}


def view_columns(schema: Any) -> list[Column]:
    """The table columns of a view schema (an Avro record), in field order."""
    named: dict[str, Any] = {}
    columns = list(_walk(schema, (), named))
    taken = set(ENVELOPE_COLUMNS)
    out: list[Column] = []
    for column in columns:
        name = column.name
        if name in taken:
            name = f"view_{name}"
        taken.add(name)
        out.append(Column(column.path, name[:63], column.sql_type, column.json))
    return out


def _walk(schema: Any, path: tuple[str, ...], named: dict[str, Any]) -> Iterator[Column]:
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) == 1:        # an optional record flattens like a required one
            schema = _resolve(branches[0], named)
    if isinstance(schema, dict) and schema.get("type") == "record":
        for f in schema["fields"]:
            yield from _walk(f["type"], (*path, f["name"]), named)
        return
    name = "_".join(path).lower()
    sql_type, as_json = _sql_type(schema, named)
    yield Column(path, name, sql_type, as_json)


def _sql_type(schema: Any, named: dict[str, Any]) -> tuple[str, bool]:
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) == 1:
            return _sql_type(branches[0], named)
        return "jsonb", True
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        if logical in _LOGICAL:
            return _LOGICAL[logical], False
        kind = schema.get("type")
        if kind in ("array", "map", "record"):
            return "jsonb", True
        return _sql_type(kind, named)
    return _PRIMITIVES.get(schema, "jsonb"), schema not in _PRIMITIVES


def _resolve(schema: Any, named: dict[str, Any]) -> Any:
    if isinstance(schema, str) and schema in named:
        return named[schema]
    if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
        name = schema.get("name", "")
        namespace = schema.get("namespace")
        named[name] = schema
        if namespace:
            named[f"{namespace}.{name}"] = schema
    if isinstance(schema, list):
        for branch in schema:
            _resolve(branch, named)
    return schema


def _dig(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _translate(exc: Exception, table: str) -> Exception:
    """psycopg's error as ours, keeping only the SQLSTATE: server messages can quote row
    values."""
    import psycopg
    from psycopg import errors

    if isinstance(exc, errors.InsufficientPrivilege):
        return FatalConnectorError(f"the database user may not write table {table}; GRANT "
                                   "INSERT, UPDATE (and CREATE for create_table)")
    if isinstance(exc, errors.InvalidAuthorizationSpecification | errors.InvalidPassword):
        return FatalConnectorError("PostgreSQL refused the credentials in 'dsn'")
    if isinstance(exc, errors.UndefinedTable | errors.UndefinedColumn):
        return FatalConnectorError(f"table {table} or one of its columns is missing; "
                                   "create it or set create_table: true")
    if isinstance(exc, psycopg.OperationalError):
        return RetriableConnectorError("cannot reach PostgreSQL (connection failed or "
                                       "lost); retrying")
    sqlstate = getattr(exc, "sqlstate", None) or "unknown"
    return RetriableConnectorError(f"PostgreSQL error (SQLSTATE {sqlstate}) writing {table}")
