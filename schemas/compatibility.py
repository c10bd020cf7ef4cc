"""Can data written with one Avro schema be read with another?

`reader_can_read` implements the Avro 1.11 specification's "Schema Resolution" rules and
returns every problem it finds, each with the dotted path of the field concerned
(`mother.ssn: type changed from string to int`); an empty list means compatible.
`incompatibilities` applies a Confluent-style `CompatibilityLevel` to a new and an old
version of a subject.

Logical types are ignored, as Avro's resolution rules ignore them: only the encoded form
decides whether bytes can be read. Array items appear in paths as `field[]`, map values
as `field{}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException

from schemas.errors import SchemaError

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_KINDS = frozenset({"record", "error", "enum", "fixed"})

# Writer type -> reader types it may be promoted to (Avro 1.11, "Schema Resolution").
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}

ROOT_PATH = "<root>"


class CompatibilityLevel(StrEnum):
    """Which earlier versions a new schema version must stay compatible with.

    The meanings are Confluent Schema Registry's: BACKWARD means the new schema can read
    data written with the latest version (consumers upgrade first), FORWARD means the
    latest version can read data written with the new one (producers upgrade first),
    FULL means both. The `_TRANSITIVE` levels check every earlier version, not just the
    latest. NONE checks nothing.
    """

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        """True when every earlier version is checked, not only the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def new_reads_old(self) -> bool:
        """True when the new schema must read data written with earlier versions."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def old_reads_new(self) -> bool:
        """True when earlier versions must read data written with the new schema."""
        return self.value.startswith(("FORWARD", "FULL"))


def parse_for_resolution(schema: Any, named: dict[str, Any]) -> Any:
    """Parse a schema with fastavro so every name is fully qualified.

    `schema` may be JSON text, the schema as JSON values, or an already parsed schema.
    Named types end up in `named`, keyed by full name. Raises `SchemaError`.
    """
    try:
        if isinstance(schema, str):
            stripped = schema.strip()
            # A bare primitive name is a valid schema too, and not JSON text.
            schema = json.loads(stripped) if stripped[:1] in '{["' else stripped
        elif not (isinstance(schema, Mapping) and "__fastavro_parsed" in schema):
            schema = json.loads(json.dumps(schema))
        return fastavro.parse_schema(schema, named_schemas=named)
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"schema is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except (SchemaParseException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SchemaError(f"not a valid Avro schema: {exc}") from exc


def reader_can_read(reader: Any, writer: Any) -> list[str]:
    """List why data written with `writer` cannot be read with `reader` (empty: it can).

    Messages treat the reader as the newer schema ("field added without a default");
    `incompatibilities` words them for either direction. Raises `SchemaError` when either
    schema is not valid Avro.
    """
    return _Resolution(reader, writer, reader_is_new=True).problems()


def incompatibilities(new: Any, old: Any, level: CompatibilityLevel) -> list[str]:
    """List why `new` breaks `level` against one earlier version `old` (empty: it does not)."""
    found: list[str] = []
    if level.new_reads_old:
        found += _Resolution(new, old, reader_is_new=True).problems()
    if level.old_reads_new:
        found += _Resolution(old, new, reader_is_new=False).problems()
    return list(dict.fromkeys(found))


def describe(schema: Any) -> str:
    """A short human name for a parsed type: `string`, `org.x.Sex`, `array<int>`, ..."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union[" + ", ".join(describe(b) for b in schema) + "]"
    kind = schema.get("type")
    if kind == "array":
        return f"array<{describe(schema.get('items'))}>"
    if kind == "map":
        return f"map<{describe(schema.get('values'))}>"
    if kind in NAMED_KINDS:
        return str(schema.get("name"))
    return describe(kind)


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    kind = schema.get("type")
    return kind if isinstance(kind, str) else "union"


def _qualified_aliases(schema: Mapping[str, Any]) -> set[str]:
    """A named type's aliases, qualified with its namespace when they have none."""
    name = str(schema.get("name", ""))
    namespace = name.rpartition(".")[0]
    aliases = set()
    for alias in schema.get("aliases", []) or []:
        aliases.add(alias)
        if "." not in alias and namespace:
            aliases.add(f"{namespace}.{alias}")
    return aliases


def _join(path: str, name: str) -> str:
    return name if not path else f"{path}.{name}"


class _Resolution:
    """One reader/writer comparison; collects problems as it walks both schemas."""

    def __init__(self, reader: Any, writer: Any, *, reader_is_new: bool) -> None:
        self.reader_named: dict[str, Any] = {}
        self.writer_named: dict[str, Any] = {}
        self.reader = parse_for_resolution(reader, self.reader_named)
        self.writer = parse_for_resolution(writer, self.writer_named)
        self.reader_is_new = reader_is_new
        # Record pairs being compared further up: a recursive type is assumed to match
        # itself, which keeps the walk finite.
        self.in_progress: set[tuple[str, str]] = set()

    def problems(self) -> list[str]:
        found: list[str] = []
        self._check(self.reader, self.writer, "", found)
        return list(dict.fromkeys(found))

    # -- helpers ---------------------------------------------------------------

    def _deref(self, schema: Any, named: dict[str, Any]) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return named.get(schema, schema)
        if isinstance(schema, Mapping) and schema.get("type") in PRIMITIVES:
            return schema["type"]  # a primitive with attributes (logical types ignored)
        return schema

    def _old_new(self, reader: Any, writer: Any) -> tuple[Any, Any]:
        return (writer, reader) if self.reader_is_new else (reader, writer)

    def _type_changed(self, reader: Any, writer: Any, path: str, found: list[str]) -> None:
        old, new = self._old_new(reader, writer)
        found.append(f"{path or ROOT_PATH}: type changed from {describe(old)} to {describe(new)}")

    @staticmethod
    def _names_match(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> bool:
        return reader.get("name") == writer.get("name") or writer.get("name") in _qualified_aliases(
            reader
        )

    def _matches(self, reader: Any, writer: Any) -> bool:
        """Avro's shallow "schemas match" test, used to pick a branch of a reader union."""
        reader_kind, writer_kind = _kind(reader), _kind(writer)
        if reader_kind != writer_kind:
            return reader_kind in PROMOTIONS.get(writer_kind, frozenset())
        if reader_kind in NAMED_KINDS:
            if reader_kind == "fixed" and reader.get("size") != writer.get("size"):
                return False
            return self._names_match(reader, writer)
        return True

    # -- the walk --------------------------------------------------------------

    def _check(self, reader: Any, writer: Any, path: str, found: list[str]) -> None:
        reader = self._deref(reader, self.reader_named)
        writer = self._deref(writer, self.writer_named)
        if isinstance(writer, list):
            self._check_writer_union(reader, writer, path, found)
        elif isinstance(reader, list):
            self._check_reader_union(reader, writer, path, found)
        else:
            self._check_plain(reader, writer, path, found)

    def _check_writer_union(
        self, reader: Any, writer: list[Any], path: str, found: list[str]
    ) -> None:
        """Every branch the writer may have used must be readable."""
        unreadable: list[Any] = []
        for branch in writer:
            branch = self._deref(branch, self.writer_named)
            if isinstance(reader, list):
                if not self._pick_reader_branch(reader, branch, path, found):
                    unreadable.append(branch)
            elif self._matches(reader, branch):
                self._check(reader, branch, path, found)
            else:
                unreadable.append(branch)
        if not unreadable:
            return
        if not isinstance(reader, list):
            self._type_changed(reader, writer, path, found)
            return
        names = ", ".join(describe(b) for b in unreadable)
        if self.reader_is_new:
            found.append(f"{path or ROOT_PATH}: union no longer accepts {names}")
        else:
            found.append(
                f"{path or ROOT_PATH}: union now accepts {names}, "
                "which readers of the older schema cannot read"
            )

    def _check_reader_union(
        self, reader: list[Any], writer: Any, path: str, found: list[str]
    ) -> None:
        if not self._pick_reader_branch(reader, writer, path, found):
            self._type_changed(reader, writer, path, found)

    def _pick_reader_branch(
        self, reader: list[Any], writer: Any, path: str, found: list[str]
    ) -> bool:
        """Resolve a non-union writer type against a reader union.

        Returns False when no branch even matches shallowly. When some match but none
        resolves cleanly, the first candidate's problems are reported.
        """
        candidates = [
            branch
            for branch in (self._deref(b, self.reader_named) for b in reader)
            if self._matches(branch, writer)
        ]
        if not candidates:
            return False
        first_problems: list[str] | None = None
        for branch in candidates:
            attempt: list[str] = []
            self._check(branch, writer, path, attempt)
            if not attempt:
                return True
            if first_problems is None:
                first_problems = attempt
        found.extend(first_problems or [])
        return True

    def _check_plain(self, reader: Any, writer: Any, path: str, found: list[str]) -> None:
        reader_kind, writer_kind = _kind(reader), _kind(writer)
        if reader_kind != writer_kind:
            if reader_kind not in PROMOTIONS.get(writer_kind, frozenset()):
                self._type_changed(reader, writer, path, found)
            return
        if reader_kind in ("record", "error"):
            self._check_record(reader, writer, path, found)
        elif reader_kind == "enum":
            self._check_enum(reader, writer, path, found)
        elif reader_kind == "fixed":
            self._check_fixed(reader, writer, path, found)
        elif reader_kind == "array":
            self._check(reader.get("items"), writer.get("items"), f"{path}[]", found)
        elif reader_kind == "map":
            self._check(reader.get("values"), writer.get("values"), f"{path}{{}}", found)

    def _renamed(self, reader: Any, writer: Any, path: str, found: list[str]) -> bool:
        if self._names_match(reader, writer):
            return False
        old, new = self._old_new(reader, writer)
        hint = " (add the old name to its aliases)" if self.reader_is_new else ""
        found.append(
            f"{path or ROOT_PATH}: {reader.get('type')} renamed from {old.get('name')} "
            f"to {new.get('name')}{hint}"
        )
        return True

    def _check_record(
        self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str, found: list[str]
    ) -> None:
        if self._renamed(reader, writer, path, found):
            return
        pair = (str(reader.get("name")), str(writer.get("name")))
        if pair in self.in_progress:
            return
        self.in_progress.add(pair)
        try:
            writer_fields = {f["name"]: f for f in writer.get("fields", [])}
            for field in reader.get("fields", []):
                field_path = _join(path, field["name"])
                match = writer_fields.get(field["name"])
                if match is None:
                    match = next(
                        (
                            writer_fields[a]
                            for a in field.get("aliases", []) or []
                            if a in writer_fields
                        ),
                        None,
                    )
                if match is not None:
                    self._check(field["type"], match["type"], field_path, found)
                elif "default" not in field:
                    found.append(
                        f"{field_path}: field added without a default"
                        if self.reader_is_new
                        else f"{field_path}: field removed, but the older schema "
                        "has no default for it"
                    )
        finally:
            self.in_progress.discard(pair)

    def _check_enum(
        self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str, found: list[str]
    ) -> None:
        if self._renamed(reader, writer, path, found):
            return
        known = set(reader.get("symbols", []))
        missing = [s for s in writer.get("symbols", []) if s not in known]
        if not missing or "default" in reader:
            return
        names = ", ".join(missing)
        found.append(
            f"{path or ROOT_PATH}: enum symbols removed without an enum default: {names}"
            if self.reader_is_new
            else f"{path or ROOT_PATH}: enum symbols added that readers of the older "
            f"schema cannot read (it has no enum default): {names}"
        )

    def _check_fixed(
        self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str, found: list[str]
    ) -> None:
        if self._renamed(reader, writer, path, found):
            return
        if reader.get("size") != writer.get("size"):
            old, new = self._old_new(reader, writer)
            found.append(
                f"{path or ROOT_PATH}: fixed size changed from {old.get('size')} "
                f"to {new.get('size')}"
            )
