"""Rules a schema must keep before the registry accepts it: valid JSON, fastavro's parse,
the parts of the Avro specification fastavro does not enforce, and no decoding hazards.

`prepare` returns the canonical text the registry stores and compares, and the parsed
schema it checks compatibility with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from schemas.compatibility import NAMED_KINDS, PRIMITIVES, parse_for_resolution
from schemas.decoding_safety import decoding_hazards
from schemas.errors import SchemaError

_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


TOO_DEEP = "schema is nested too deeply"


def prepare(schema: Mapping[str, Any] | str | list[Any]) -> tuple[str, Any]:
    """Validate a schema and return (canonical JSON text, fastavro-parsed schema)."""
    try:
        return _prepare_unguarded(schema)
    except RecursionError:
        # Nesting only bounded by the stack: refused like any other invalid schema.
        raise SchemaError(TOO_DEEP) from None


def _prepare_unguarded(schema: Mapping[str, Any] | str | list[Any]) -> tuple[str, Any]:
    try:
        value = json.loads(schema) if isinstance(schema, str) else json.loads(json.dumps(schema))
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"schema is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"schema is not JSON-serialisable: {exc}") from exc
    parsed = parse_for_resolution(value, {})
    problems: list[str] = []
    _structure_problems(parsed, "", problems)
    problems += decoding_hazards(parsed)
    if problems:
        raise SchemaError("invalid schema: " + "; ".join(problems))
    return json.dumps(value, sort_keys=True, separators=(",", ":")), parsed


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and all(_AVRO_NAME.match(part) for part in name.split("."))


def _union_branch_key(branch: Any) -> str:
    if isinstance(branch, str):
        return branch
    kind = str(branch.get("type"))
    return str(branch.get("name")) if kind in NAMED_KINDS else kind


def _structure_problems(node: Any, path: str, found: list[str]) -> None:
    """Rules of the Avro specification that fastavro's parser does not enforce."""
    where = path or "<root>"
    if isinstance(node, list):
        if not node:
            found.append(f"{where}: a union needs at least one type")
        seen: set[str] = set()
        for branch in node:
            if isinstance(branch, list):
                found.append(f"{where}: a union may not directly contain another union")
                continue
            key = _union_branch_key(branch)
            if key in seen:
                found.append(f"{where}: union lists {key} more than once")
            seen.add(key)
            _structure_problems(branch, path, found)
        return
    if not isinstance(node, Mapping):
        return
    kind = node.get("type")
    if kind in NAMED_KINDS and not _valid_name(node.get("name")):
        found.append(f"{where}: {kind} name is not a valid Avro name")
    if kind in ("record", "error"):
        names: set[str] = set()
        for field in node.get("fields", []):
            name = field.get("name")
            field_path = f"{path}.{name}" if path else str(name)
            if not _valid_name(name) or "." in str(name):
                found.append(f"{field_path}: field name is not a valid Avro name")
            elif name in names:
                found.append(f"{field_path}: field appears more than once")
            names.add(str(name))
            _structure_problems(field.get("type"), field_path, found)
    elif kind == "enum":
        symbols = node.get("symbols")
        if not isinstance(symbols, list) or not symbols:
            found.append(f"{where}: enum symbols must be a non-empty list")
        elif not all(_valid_name(s) and "." not in s for s in symbols):
            found.append(f"{where}: enum symbols must be valid Avro names")
        elif "default" in node and node["default"] not in symbols:
            found.append(f"{where}: enum default is not one of its symbols")
    elif kind == "fixed":
        size = node.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            found.append(f"{where}: fixed size must be a non-negative integer")
    elif kind == "array":
        _structure_problems(node.get("items"), f"{path}[]", found)
    elif kind == "map":
        _structure_problems(node.get("values"), f"{path}{{}}", found)
    elif not isinstance(kind, str) or kind not in PRIMITIVES:
        found.append(f"{where}: unknown type")
