"""Event schemas as Handoff understands them: Avro records whose leaf fields carry data tags.

An `EventSchema` is one version of one event type, with its fields flattened to dotted
paths (`mother.ssn`) so policy can talk about them. A `SchemaCatalog` holds every version
of every event type; the built-in schemas ship in `schemas/events/`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import fastavro
from fastavro.schema import SchemaParseException

from schemas.datestrings import DATE, field_is_date, is_date_string_type
from schemas.errors import SchemaError, UnknownSchemaError
from schemas.tags import TAGS

BUILTIN_DIR = Path(__file__).parent / "events"
ENVELOPE_FIELDS = ("event_id", "occurred_at", "subject_id")
PRIMITIVE_TYPES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One leaf field of an event schema, addressed by its dotted path."""

    path: str
    tags: frozenset[str]
    avro_type: Any
    """The field's Avro type as written in the schema (for example `["null", "string"]`)."""
    nullable: bool
    """True when the field itself, or any record it sits inside, admits null."""
    base_type: str
    """The non-null Avro type name: `string`, `int`, `enum`, `array`, ..."""
    logical_type: str | None
    """The Avro logical type; `date` on a `string` field is an ISO date held as a string
    (see `schemas.datestrings`)."""
    doc: str | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.path.split("."))

    @property
    def personal(self) -> bool:
        return bool(self.tags)


@dataclass(frozen=True)
class EventSchema:
    """One version of one event type's Avro schema."""

    event_type: str
    version: int
    schema: Mapping[str, Any]
    """The schema as JSON, including Handoff's `tags` attributes."""
    fields: tuple[FieldInfo, ...]
    example: Mapping[str, Any] | None = None
    _by_path: dict[str, FieldInfo] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_path.update({f.path: f for f in self.fields})

    @cached_property
    def parsed(self) -> dict[str, Any]:
        """The schema parsed once by fastavro, for reading and writing records."""
        # An event schema is a record, so fastavro returns a dict.
        return cast(dict[str, Any], fastavro.parse_schema(json.loads(json.dumps(self.schema))))

    @property
    def full_name(self) -> str:
        ns = self.schema.get("namespace")
        name = str(self.schema["name"])
        return f"{ns}.{name}" if ns and "." not in name else name

    def field(self, path: str) -> FieldInfo:
        try:
            return self._by_path[path]
        except KeyError:
            raise UnknownSchemaError(
                f"'{path}' is not a field of {self.event_type} v{self.version}"
            ) from None

    def has_field(self, path: str) -> bool:
        return path in self._by_path

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.fields)

    def canonical_json(self) -> str:
        return json.dumps(self.schema, sort_keys=True, separators=(",", ":"))


def _non_null(avro_type: Any) -> tuple[Any, bool]:
    """Return (the type without null, whether null was admitted)."""
    if isinstance(avro_type, list):
        rest = [t for t in avro_type if t != "null"]
        nullable = len(rest) < len(avro_type)
        if len(rest) == 1:
            return rest[0], nullable
        return rest, nullable
    return avro_type, False


def _type_name(avro_type: Any) -> tuple[str, str | None]:
    if isinstance(avro_type, str):
        return avro_type, None
    if isinstance(avro_type, list):
        return "union", None
    return str(avro_type.get("type")), avro_type.get("logicalType")


def _full_name(named_type: Mapping[str, Any], namespace: str) -> str:
    """A named type's full name, given the namespace it is defined in."""
    name = str(named_type.get("name", ""))
    if "." in name:
        return name
    own = named_type.get("namespace") or namespace
    return f"{own}.{name}" if own else name


def _resolve(avro_type: Any, named: Mapping[str, Any], namespace: str) -> Any:
    """Replace a reference to a named type (`"Person"`) by its definition."""
    if not isinstance(avro_type, str) or avro_type in PRIMITIVE_TYPES:
        return avro_type
    full = avro_type if "." in avro_type or not namespace else f"{namespace}.{avro_type}"
    return named.get(full, named.get(avro_type, avro_type))


def _flatten(
    record: Mapping[str, Any],
    prefix: str,
    inherited_null: bool,
    problems: list[str],
    named: Mapping[str, Any],
    namespace: str,
    enclosing: tuple[str, ...] = (),
) -> Iterator[FieldInfo]:
    full_name = _full_name(record, namespace)
    namespace = full_name.rpartition(".")[0]
    enclosing = (*enclosing, full_name)
    for spec in record.get("fields", []):
        name = spec.get("name")
        path = f"{prefix}{name}"
        inner, nullable = _non_null(spec.get("type"))
        inner = _resolve(inner, named, namespace)
        tags = spec.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            problems.append(f"{path}: 'tags' must be a list of strings")
            tags = []
        unknown = sorted(set(tags) - TAGS)
        if unknown:
            problems.append(
                f"{path}: unknown tag {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(TAGS))}"
            )
        if isinstance(inner, dict) and inner.get("type") == "record":
            if tags:
                problems.append(f"{path}: tag the fields of a nested record, not the record")
            if _full_name(inner, namespace) in enclosing:
                problems.append(f"{path}: a record may not contain itself")
                continue
            # A record type used a second time is referenced by name; its fields are
            # flattened like the first use's, so they keep their tags.
            yield from _flatten(
                inner,
                f"{path}.",
                inherited_null or nullable,
                problems,
                named,
                namespace,
                enclosing,
            )
            continue
        base, logical = _type_name(inner)
        if field_is_date(spec) or is_date_string_type(inner):
            if base != "string":
                problems.append(f"{path}: a date format applies to string fields; use the "
                                "Avro date logical type on an int")
            logical = DATE
        yield FieldInfo(
            path=path,
            tags=frozenset(t for t in tags if t in TAGS),
            avro_type=spec.get("type"),
            nullable=inherited_null or nullable,
            base_type=base,
            logical_type=logical,
            doc=spec.get("doc"),
        )


def build_event_schema(
    event_type: str,
    schema: Mapping[str, Any],
    version: int = 1,
    example: Mapping[str, Any] | None = None,
) -> EventSchema:
    """Check an event schema against Handoff's rules and index its fields.

    Raises `SchemaError` listing every problem: invalid Avro, a missing envelope field,
    an unknown tag, or an example that does not match.
    """
    problems: list[str] = []
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        raise SchemaError(f"{event_type}: an event schema must be an Avro record")
    try:
        parsed = fastavro.parse_schema(json.loads(json.dumps(schema)))
    except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise SchemaError(f"{event_type}: not a valid Avro schema: {exc}") from exc
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    fields = tuple(_flatten(schema, "", False, problems, named, ""))
    top = {f.get("name") for f in schema.get("fields", [])}
    for required in ENVELOPE_FIELDS:
        if required not in top:
            problems.append(f"missing required field '{required}'")
    if example is not None:
        try:
            fastavro.validation.validate(example, parsed, raise_errors=True)
        except fastavro.validation.ValidationError as exc:
            problems.append(f"example does not match the schema: {exc}")
    if problems:
        raise SchemaError(f"{event_type}: " + "; ".join(problems))
    return EventSchema(event_type, version, schema, fields, example)


class SchemaCatalog:
    """Every known version of every event type, in memory.

    The runtime's registry feeds new versions in with `add`; policy asks for `get`.
    """

    def __init__(self, schemas: Iterable[EventSchema] = ()) -> None:
        self._versions: dict[str, dict[int, EventSchema]] = {}
        for s in schemas:
            self.add(s)

    def add(self, schema: EventSchema) -> None:
        self._versions.setdefault(schema.event_type, {})[schema.version] = schema

    def get(self, event_type: str, version: int | None = None) -> EventSchema:
        versions = self._versions.get(event_type)
        if not versions:
            raise UnknownSchemaError(f"unknown event type '{event_type}'")
        if version is None:
            return versions[max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise UnknownSchemaError(f"{event_type} has no version {version}") from None

    def versions(self, event_type: str) -> list[int]:
        return sorted(self._versions.get(event_type, {}))

    def event_types(self) -> list[str]:
        return sorted(self._versions)

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._versions

    @classmethod
    def load(cls, directory: Path | str = BUILTIN_DIR) -> SchemaCatalog:
        """Load every `<type>.avsc` (and `<type>.example.json` beside it) in a folder."""
        directory = Path(directory)
        catalog = cls()
        errors: list[str] = []
        for path in sorted(directory.glob("*.avsc")):
            event_type = path.stem
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                errors.append(f"{path.name}:{exc.lineno}: invalid JSON: {exc.msg}")
                continue
            example_path = path.with_name(f"{event_type}.example.json")
            try:
                example = (
                    json.loads(example_path.read_text(encoding="utf-8"))
                    if example_path.exists()
                    else None
                )
            except json.JSONDecodeError as exc:
                errors.append(f"{example_path.name}:{exc.lineno}: invalid JSON: {exc.msg}")
                continue
            try:
                catalog.add(build_event_schema(event_type, schema, 1, example))
            except SchemaError as exc:
                errors.append(f"{path.name}: {exc}")
        if errors:
            raise SchemaError("; ".join(errors))
        return catalog

    @classmethod
    def load_all(cls, *directories: Path | str) -> SchemaCatalog:
        """Every schema of several folders (the shipped one, a state's own). A type may
        be defined in one folder only. Raises `SchemaError` naming each problem."""
        catalog = cls()
        errors: list[str] = []
        seen: dict[str, Path] = {}
        for directory in dict.fromkeys(Path(d).resolve() for d in directories):
            if not directory.is_dir():
                errors.append(f"{directory}: schema folder not found")
                continue
            try:
                loaded = cls.load(directory)
            except SchemaError as exc:
                errors.append(f"{directory}: {exc}")
                continue
            for event_type in loaded.event_types():
                if event_type in seen:
                    errors.append(f"{directory / (event_type + '.avsc')}: event type "
                                  f"'{event_type}' is already defined in {seen[event_type]}; "
                                  "register a new version through the registry instead")
                    continue
                seen[event_type] = directory
                for version in loaded.versions(event_type):
                    catalog.add(loaded.get(event_type, version))
        if errors:
            raise SchemaError("; ".join(errors))
        return catalog
