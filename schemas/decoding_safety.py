"""Which Avro schemas are safe to decode untrusted bytes with.

Decoding must keep memory bounded whatever the payload holds. fastavro reads declared
lengths through `BytesIO.read`, which never allocates more than the bytes present, and
every array item of a schema accepted here takes at least one byte, so item counts are
bounded by the payload's length. Two kinds of schema break that: types that refer to
themselves (fastavro's C reader follows them until the stack overflows) and arrays whose
items can be encoded in zero bytes (a few bytes could declare billions of them). The
registry refuses such schemas when they are registered; the codec checks again before
decoding with one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.compatibility import PRIMITIVES, parse_for_resolution


def decoding_hazards(schema: Any) -> list[str]:
    """List why decoding untrusted bytes with `schema` would be unsafe (empty: it is safe).

    Refused: types that refer to themselves (nesting bounded only by the stack) and arrays
    whose items can be encoded in zero bytes (a few bytes could declare billions of them).
    Map entries always carry a key, so maps are safe whatever their values.
    """
    named: dict[str, Any] = {}
    root = parse_for_resolution(schema, named)
    hazards: list[str] = []
    finished: set[str] = set()

    def visit(node: Any, path: str, open_names: tuple[str, ...]) -> None:
        if isinstance(node, str) and node not in PRIMITIVES:
            if node in open_names:
                hazards.append(f"{path or '<root>'}: type {node} refers to itself")
            elif node not in finished and node in named:
                visit(named[node], path, open_names)
        elif isinstance(node, list):
            for branch in node:
                visit(branch, path, open_names)
        elif isinstance(node, Mapping):
            kind = node.get("type")
            if kind in ("record", "error"):
                name = str(node.get("name"))
                for field in node.get("fields", []):
                    field_path = f"{path}.{field['name']}" if path else field["name"]
                    visit(field["type"], field_path, (*open_names, name))
                finished.add(name)
            elif kind == "array":
                if _can_be_empty(node["items"], named, set()):
                    hazards.append(f"{path}[]: array items can be encoded in zero bytes")
                visit(node["items"], f"{path}[]", open_names)
            elif kind == "map":
                visit(node["values"], f"{path}{{}}", open_names)

    visit(root, "", ())
    return list(dict.fromkeys(hazards))


def _can_be_empty(node: Any, named: dict[str, Any], seen: set[str]) -> bool:
    """True when some value of this type encodes as zero bytes."""
    if isinstance(node, str):
        if node in PRIMITIVES:
            return node == "null"
        if node in seen or node not in named:
            return False  # recursion is reported on its own
        return _can_be_empty(named[node], named, seen | {node})
    if isinstance(node, Mapping):
        kind = node.get("type")
        if kind in ("record", "error"):
            inner = seen | {str(node.get("name"))}
            return all(_can_be_empty(f["type"], named, inner) for f in node.get("fields", []))
        if kind == "fixed":
            return node.get("size") == 0
        return kind == "null"
    return False  # a union always writes its branch index
