"""Declarative field mapping: a source system's rows or documents to a Handoff event.

A mapping is data (YAML in a connectors file or a file of its own), checked once when it
is loaded and compiled to plain functions, so the per-record path does no interpreting:

    event_type: birth
    fields:
      subject_id: mother_mrn                     # shorthand for {from: mother_mrn}
      occurred_at: {from: recorded, convert: [{datetime: "%m/%d/%Y %H:%M"}]}
      child.birth_date: {from: dob, convert: [{date: "%m/%d/%Y"}]}
      child.sex: {from: sex, convert: [upper, {lookup: {F: FEMALE, M: MALE}}]}
      child.birth_weight_grams: {from: weight_g, convert: [int]}
      hospital_id: {const: "1467533928"}
      mother.phone: {from: phone, default: null}
    hook: county_exports.births:fix_up           # optional, for what a mapping cannot say

Target keys are dotted event paths; `from` is a column name, or a dotted path into a
JSON document (list items by number: `names.0.given`). Values are trimmed and empty
strings count as missing unless `keep_empty: true`. A missing value takes `default` if
one is given, else the field is left out and schema validation decides whether that is
allowed. With `passthrough: true` the record itself is the starting event (JSON-lines
already shaped like the event) and `fields` only add or override.

Converters, applied in order: `trim`, `upper`, `lower`, `int`, `float`, `bool`
(true/false, yes/no, y/n, 1/0, any case), `{date: FORMAT}` (strptime format to an ISO
date), `{datetime: FORMAT}` (to an ISO instant, UTC unless the format has `%z`),
`{lookup: {A: B, ...}}` or `{lookup: {table: {...}, default: X}}`.

A record that cannot be mapped yields problems as (event field path, what is wrong);
problems never quote the value, because they reach dead-letter topics and reports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.base import FieldProblem
from connectors.errors import MappingError

Hook = Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any] | None]
"""`hook(event, record)`: adjust the mapped event (return a new one, or None to keep
the one given, edited in place). Raise `RecordProblem` to reject the record."""


class RecordProblem(Exception):
    """Raised by a mapping hook or converter to reject one record, with the field path
    and what is wrong (not the value)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


# -- configuration models -----------------------------------------------------------------


class FieldRule(BaseModel):
    """How one event field gets its value."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(default=None, alias="from")
    const: Any = None
    convert: list[str | dict[str, Any]] = []
    default: Any = None
    keep_empty: bool = False


class MappingSpec(BaseModel):
    """A mapping as written in YAML. `compile()` turns it into a `FieldMapping`."""

    model_config = ConfigDict(extra="forbid")

    event_type: str = Field(min_length=1)
    passthrough: bool = False
    fields: dict[str, FieldRule | str] = {}
    hook: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")

    @field_validator("fields")
    @classmethod
    def _paths(cls, value: dict[str, FieldRule | str]) -> dict[str, FieldRule | str]:
        for path in value:
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"'{path}' is not a dotted field path")
        return value

    def compile(self) -> FieldMapping:
        return FieldMapping(self)


def load_mapping(source: Path | Mapping[str, Any]) -> FieldMapping:
    """Check and compile a mapping from a YAML file or an already-parsed mapping.

    Raises `MappingError` naming the file and each bad setting.
    """
    where = str(source) if isinstance(source, Path) else "mapping"
    if isinstance(source, Path):
        try:
            raw = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise MappingError(f"{where}: cannot read mapping: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise MappingError(f"{where}{line}: invalid YAML") from exc
        except RecursionError:
            raise MappingError(f"{where}: invalid YAML: nested too deeply") from None
    else:
        raw = dict(source)
    try:
        spec = MappingSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors(include_input=False))
        raise MappingError(f"{where}: {problems}") from exc
    try:
        return spec.compile()
    except MappingError as exc:
        raise MappingError(f"{where}: {exc}") from exc


# -- converters ---------------------------------------------------------------------------

Converter = Callable[[Any], Any]

_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})


def _text(name: str, fn: Callable[[str], str]) -> Converter:
    def convert(value: Any) -> Any:
        if not isinstance(value, str):
            raise RecordProblem("", f"{name} needs text")
        return fn(value)
    return convert


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise RecordProblem("", "expected a whole number")
    if isinstance(value, int):
        return value
    try:
        as_float = float(str(value).replace(",", ""))
    except ValueError:
        raise RecordProblem("", "expected a whole number") from None
    if not as_float.is_integer():
        raise RecordProblem("", "expected a whole number")
    return int(as_float)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise RecordProblem("", "expected a number")
    try:
        return float(str(value).replace(",", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise RecordProblem("", "expected a number") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RecordProblem("", "expected yes/no, true/false or 1/0")


def _date(fmt: str) -> Converter:
    def convert(value: Any) -> str:
        try:
            return datetime.strptime(str(value), fmt).date().isoformat()
        except ValueError:
            raise RecordProblem("", f"date does not match the format {fmt}") from None
    return convert


def _datetime(fmt: str) -> Converter:
    def convert(value: Any) -> str:
        try:
            parsed = datetime.strptime(str(value), fmt)
        except ValueError:
            raise RecordProblem("", f"time does not match the format {fmt}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        text = parsed.astimezone(UTC).isoformat(timespec="milliseconds")
        return text.replace("+00:00", "Z")
    return convert


def _lookup(arg: Any) -> Converter:
    if isinstance(arg, Mapping) and "table" in arg:
        unknown = set(arg) - {"table", "default"}
        if unknown or not isinstance(arg["table"], Mapping):
            raise MappingError("lookup takes {table: {...}, default: X} or a plain table")
        table, default, has_default = dict(arg["table"]), arg.get("default"), "default" in arg
    elif isinstance(arg, Mapping):
        table, default, has_default = dict(arg), None, False
    else:
        raise MappingError("lookup needs a table of values")
    keys = {str(k): v for k, v in table.items()}

    def convert(value: Any) -> Any:
        found = keys.get(str(value), MISSING)
        if found is MISSING:
            if has_default:
                return default
            raise RecordProblem("", "value is not in the lookup table")
        return found
    return convert


_SIMPLE: dict[str, Converter] = {
    "trim": _text("trim", str.strip),
    "upper": _text("upper", str.upper),
    "lower": _text("lower", str.lower),
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
}
_WITH_ARG: dict[str, Callable[[Any], Converter]] = {
    "date": _date, "datetime": _datetime, "lookup": _lookup,
}


def _converter(spec: str | dict[str, Any]) -> Converter:
    if isinstance(spec, str):
        if spec in _SIMPLE:
            return _SIMPLE[spec]
        raise MappingError(f"unknown converter '{spec}'; known: "
                           f"{', '.join([*_SIMPLE, *_WITH_ARG])}")
    if len(spec) != 1:
        raise MappingError("a converter with an argument is a one-key mapping, "
                           "like {date: '%m/%d/%Y'}")
    ((name, arg),) = spec.items()
    if name not in _WITH_ARG:
        raise MappingError(f"unknown converter '{name}'; known: "
                           f"{', '.join([*_SIMPLE, *_WITH_ARG])}")
    if name in ("date", "datetime") and not isinstance(arg, str):
        raise MappingError(f"{name} needs a strptime format string")
    return _WITH_ARG[name](arg)


def _load_hook(target: str) -> Hook:
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise MappingError(f"hook {target}: cannot load it ({type(exc).__name__})") from exc
    if not callable(obj):
        raise MappingError(f"hook {target} is not callable")
    return obj


# -- compiled mapping ---------------------------------------------------------------------


def read_path(record: Any, path: Sequence[str]) -> Any:
    """The value at a dotted path of nested mappings and lists, or MISSING."""
    value = record
    for part in path:
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def _write_path(event: dict[str, Any], path: Sequence[str], value: Any) -> None:
    target = event
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = {}
            target[part] = child
        target = child
    target[path[-1]] = value


@dataclass(frozen=True, slots=True)
class MappedRecord:
    """A mapping's answer for one record: the event, or the problems that stop it."""

    event: dict[str, Any] | None
    problems: tuple[FieldProblem, ...] = ()


@dataclass(frozen=True, slots=True)
class _CompiledField:
    target: str
    target_path: tuple[str, ...]
    source_path: tuple[str, ...] | None
    const: Any
    converters: tuple[Converter, ...]
    default: Any
    keep_empty: bool


class FieldMapping:
    """A compiled mapping. `apply(record)` maps one record; it never raises for bad
    data, it reports problems."""

    def __init__(self, spec: MappingSpec) -> None:
        self.spec = spec
        self.event_type = spec.event_type
        self._fields: list[_CompiledField] = []
        for target, rule in spec.fields.items():
            if isinstance(rule, str):
                rule = FieldRule.model_validate({"from": rule})
            has_const = "const" in rule.model_fields_set
            if has_const == (rule.from_ is not None):
                raise MappingError(f"fields.{target}: give exactly one of 'from' or 'const'")
            try:
                converters = tuple(_converter(c) for c in rule.convert)
            except MappingError as exc:
                raise MappingError(f"fields.{target}.convert: {exc}") from exc
            self._fields.append(_CompiledField(
                target, tuple(target.split(".")),
                tuple(rule.from_.split(".")) if rule.from_ is not None else None,
                rule.const if has_const else MISSING, converters,
                rule.default if "default" in rule.model_fields_set else MISSING,
                rule.keep_empty,
            ))
        self._hook = _load_hook(spec.hook) if spec.hook else None

    def apply(self, record: Mapping[str, Any]) -> MappedRecord:
        """Map one source record (a CSV row, a JSON document, a table row)."""
        event: dict[str, Any] = _deep_copy(record) if self.spec.passthrough else {}
        problems: list[FieldProblem] = []
        for f in self._fields:
            value = f.const if f.source_path is None else read_path(record, f.source_path)
            if isinstance(value, str) and not f.keep_empty:
                value = value.strip()
                if not value:
                    value = MISSING
            if value is not MISSING and value is not None and f.source_path is not None:
                try:
                    for convert in f.converters:
                        value = convert(value)
                except RecordProblem as exc:
                    problems.append((f.target, exc.problem))
                    continue
            if value is MISSING:
                if f.default is MISSING:
                    continue
                value = f.default
            _write_path(event, f.target_path, value)
        if problems:
            return MappedRecord(None, tuple(problems))
        if self._hook is not None:
            return self._run_hook(event, record)
        return MappedRecord(event)

    def _run_hook(self, event: dict[str, Any], record: Mapping[str, Any]) -> MappedRecord:
        try:
            result = self._hook(event, record)  # type: ignore[misc]
        except RecordProblem as exc:
            return MappedRecord(None, ((exc.path, exc.problem),))
        except Exception as exc:  # noqa: BLE001 - integrator code; its message may hold values
            return MappedRecord(None, (("<hook>", f"the mapping hook raised "
                                                  f"{type(exc).__name__}"),))
        if result is not None and not isinstance(result, dict):
            return MappedRecord(None, (("<hook>", "the mapping hook returned something "
                                                  "other than a dict or None"),))
        return MappedRecord(result if result is not None else event)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
