"""A subscription's view of an event type: which fields it can ever receive, as Avro.

The view is derived from the source schema and every agreement that can serve the
subscription: a field no agreement can ever release is absent; a field that may be
withheld (it needs consent, or some agreement leaves it out) is nullable with default
null; a transformed field takes the transform's output type (a string); nested records
keep their shape. Every `Decision.view` for the subscription is writable with it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from policy.strictest import FieldRuling
from schemas.catalog import EventSchema

VIEW_NAMESPACE = "handoff.view"
_NAMED = ("record", "enum", "fixed")
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes",
                         "string"})


@dataclass
class ViewLeaf:
    """A field present in the view."""

    name: str
    path: str
    source: dict[str, Any]
    """The field's entry in the source schema."""
    variants: list[Any] = field(default_factory=list)
    """Non-null output types across agreements (source type, or string if transformed)."""
    nullable: bool = False
    transforms: list[str] = field(default_factory=list)


@dataclass
class ViewRecord:
    """A record in the view (the event itself, or a nested record)."""

    name: str
    path: str
    source: dict[str, Any]
    nullable: bool
    children: list[ViewLeaf | ViewRecord] = field(default_factory=list)


def namespace_for(subscription_id: str) -> str:
    """`handoff.view.<subscription id with anything but letters, digits, _ as _>`."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", subscription_id)
    if clean[:1].isdigit():
        clean = "_" + clean
    return f"{VIEW_NAMESPACE}.{clean}"


def _split_null(avro_type: Any) -> tuple[Any, bool]:
    if isinstance(avro_type, list):
        rest = [t for t in avro_type if t != "null"]
        return (rest[0] if len(rest) == 1 else rest), len(rest) < len(avro_type)
    return avro_type, False


def _is_record(avro_type: Any) -> bool:
    return isinstance(avro_type, dict) and avro_type.get("type") == "record"


class ViewLayout:
    """The shape of one subscription's view of one event type version."""

    def __init__(self, subscription_id: str, schema: EventSchema,
                 rulings_per_agreement: Sequence[Sequence[FieldRuling]]) -> None:
        self.subscription_id = subscription_id
        self.schema = schema
        self.leaves: dict[str, ViewLeaf] = {}
        self._named = _named_types(schema.schema)
        present = self._leaf_outcomes(rulings_per_agreement)
        self.root = self._record(dict(schema.schema), "", False, present)
        self._avro: dict[str, Any] | None = None

    def _leaf_outcomes(self, rulings_per_agreement: Sequence[Sequence[FieldRuling]]
                       ) -> dict[str, tuple[list[Any], bool, list[str]]]:
        """path → (output types, may be withheld, transform labels), for fields some
        agreement can release."""
        outcomes: dict[str, tuple[list[Any], bool, list[str]]] = {}
        if not rulings_per_agreement:
            return outcomes
        for info in self.schema.fields:
            variants: list[Any] = []
            labels: list[str] = []
            may_withhold = False
            for rulings in rulings_per_agreement:
                ruling = next(r for r in rulings if r.path == info.path)
                if ruling.withheld is not None:
                    may_withhold = True
                    continue
                if ruling.needs:
                    may_withhold = True
                if ruling.transform is None:
                    out = _split_null(info.avro_type)[0]
                else:
                    out = "string"
                    labels.append(ruling.transform.label())
                    if ruling.transform.kind == "generalise" and info.base_type == "string" \
                            and info.logical_type == "date":
                        # A value that is not a date is withheld rather than passed on.
                        may_withhold = True
                if out not in variants:
                    variants.append(out)
            if variants:
                outcomes[info.path] = (variants, may_withhold, labels)
        return outcomes

    def _record(self, spec: dict[str, Any], path: str, nullable: bool,
                present: dict[str, tuple[list[Any], bool, list[str]]]) -> ViewRecord:
        record_type = spec if _is_record(spec) else _split_null(spec["type"])[0]
        node = ViewRecord(str(spec.get("name")), path, spec, nullable)
        for child in record_type.get("fields", []):
            child_path = f"{path}.{child['name']}" if path else str(child["name"])
            inner, child_null = _split_null(child["type"])
            if _is_record(inner):
                sub = self._record(child, child_path, child_null, present)
                if sub.children:
                    node.children.append(sub)
            elif child_path in present:
                variants, may_withhold, labels = present[child_path]
                leaf = ViewLeaf(str(child["name"]), child_path, child, list(variants),
                                child_null or may_withhold, labels)
                node.children.append(leaf)
                self.leaves[child_path] = leaf
        return node

    # -- Avro --------------------------------------------------------------------------

    def avro_schema(self) -> dict[str, Any]:
        """The view as an Avro record schema (JSON form)."""
        if self._avro is None:
            emitted: set[str] = set()
            top = self.schema.schema
            body = self._emit_record(self.root, dict(top), emitted)
            doc = top.get("doc")
            self._avro = {
                "type": "record", "name": body["name"],
                "namespace": namespace_for(self.subscription_id),
                "doc": (f"View of {self.schema.event_type} v{self.schema.version} for "
                        f"subscription {self.subscription_id}." + (f" {doc}" if doc else "")),
                "fields": body["fields"],
            }
        return copy.deepcopy(self._avro)

    def _emit_record(self, node: ViewRecord, record_type: dict[str, Any], emitted: set[str]
                     ) -> dict[str, Any]:
        name = _short(str(record_type["name"]))
        emitted.add(name)
        fields: list[dict[str, Any]] = []
        for child in node.children:
            if isinstance(child, ViewRecord):
                inner = _split_null(child.source["type"])[0]
                entry: dict[str, Any] = {"name": child.name}
                record = self._emit_record(child, inner, emitted)
                entry["type"] = ["null", record] if child.nullable else record
                if child.nullable:
                    entry["default"] = None
            else:
                entry = self._emit_leaf(child, emitted)
            if child.source.get("doc"):
                entry["doc"] = child.source["doc"]
            fields.append(entry)
        return {"type": "record", "name": name, "fields": fields}

    def _emit_leaf(self, leaf: ViewLeaf, emitted: set[str]) -> dict[str, Any]:
        # A transformed (string) branch goes first: fastavro tries union branches in order
        # and its date branch would try to parse a generalised "2026" as a date.
        variants = sorted(leaf.variants, key=lambda t: t != "string")
        types = [self._emit_type(t, emitted) for t in variants]
        entry: dict[str, Any] = {"name": leaf.name}
        if leaf.nullable:
            entry["type"] = ["null", *types]
            entry["default"] = None
        else:
            entry["type"] = types[0] if len(types) == 1 else types
            if "default" in leaf.source and not leaf.transforms:
                entry["default"] = leaf.source["default"]
        if leaf.source.get("tags"):
            entry["tags"] = list(leaf.source["tags"])
        if leaf.transforms:
            entry["transform"] = "|".join(dict.fromkeys(leaf.transforms))
        return entry

    def _emit_type(self, avro_type: Any, emitted: set[str]) -> Any:
        """Copy a type; named types are defined on first use and referenced after."""
        if isinstance(avro_type, str):
            if avro_type in _PRIMITIVES:
                return avro_type
            short = _short(avro_type)
            if short in emitted:
                return short
            definition = self._named.get(avro_type) or self._named.get(short)
            return avro_type if definition is None else self._emit_type(definition, emitted)
        if isinstance(avro_type, list):
            return [self._emit_type(t, emitted) for t in avro_type]
        if isinstance(avro_type, dict):
            kind = avro_type.get("type")
            if kind in _NAMED:
                short = _short(str(avro_type["name"]))
                if short in emitted:
                    return short
                emitted.add(short)
                out = {k: v for k, v in avro_type.items() if k not in ("namespace", "aliases")}
                out["name"] = short
                if kind == "record":
                    out["fields"] = [
                        {**f, "type": self._emit_type(f["type"], emitted)}
                        for f in avro_type.get("fields", [])
                    ]
                return out
            out = dict(avro_type)
            if kind == "array":
                out["items"] = self._emit_type(avro_type["items"], emitted)
            elif kind == "map":
                out["values"] = self._emit_type(avro_type["values"], emitted)
            return out
        return avro_type


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _named_types(schema: Any) -> dict[str, Any]:
    """Every named type defined in a schema, by full name and by short name."""
    found: dict[str, Any] = {}

    def walk(node: Any, namespace: str | None) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, namespace)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in _NAMED:
                name = str(node["name"])
                space = node.get("namespace", namespace)
                full = name if "." in name else (f"{space}.{name}" if space else name)
                found[full] = node
                found[_short(name)] = node
                namespace = full.rsplit(".", 1)[0] if "." in full else namespace
                for f in node.get("fields", []):
                    walk(f.get("type"), namespace)
            elif kind == "array":
                walk(node.get("items"), namespace)
            elif kind == "map":
                walk(node.get("values"), namespace)
            elif isinstance(kind, list | dict):
                walk(kind, namespace)

    walk(schema, None)
    return found
