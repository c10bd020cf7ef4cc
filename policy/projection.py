"""Projection: building the view record a subscriber receives, compiled once per plan.

For each outcome (which fields are released, transformed or withheld) the engine turns
the view layout into one small Python function that reads the source record and returns
the nested view dict in a single expression: no per-field interpretation on the event
path. The generated source only ever contains Avro field names (which the schema
catalog has already checked are plain identifiers) and references to the transform
functions passed in, never data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from policy.view import ViewLayout, ViewLeaf, ViewRecord

Action = Callable[[Any], Any] | None
"""Per view leaf: None to withhold (null), `COPY` to release as is, else a transform."""


def _copy(value: Any) -> Any:  # pragma: no cover - identity marker, never called
    return value


COPY: Callable[[Any], Any] = _copy


Projection = Callable[[Mapping[str, Any], Mapping[str, str]], dict[str, Any]]
"""(source record, linked ids by field path) -> view dict."""
NO_LINKED_IDS: Mapping[str, str] = {}
Projections = dict[tuple[str, tuple[Callable[[Any], Any], ...]], Projection]
"""Compiled projections by their source and transform functions (`compile_projection`)."""


def compile_projection(layout: ViewLayout, actions: Mapping[str, Action],
                       linked: frozenset[str] = frozenset(),
                       compiled: Projections | None = None) -> Projection:
    """A function from a source record (fastavro form) and its linked ids to its view.

    `actions` maps each view leaf path to COPY, a transform function, or None; leaves
    missing from `actions` are withheld. A transformed leaf whose path is in `linked`
    (an agency id field that record linkage resolves to a person id) is transformed
    from the person id the caller passes for that path, when it passes one: a
    pseudonym is then of the person, the same whichever agency's id the event carried.

    With `compiled` (an engine's), a projection with the same source and the same
    transform functions as one compiled before is that function, whichever subscription
    it was compiled for: one function gives equal views of one event, so whoever
    encodes them can tell that by identity (its traceback label names the first one).
    """
    namespace: dict[str, Any] = {"_NO_IDS": NO_LINKED_IDS}
    lines: list[str] = []
    counter = [0]

    def value_of(leaf: ViewLeaf, var: str) -> str:
        action = actions.get(leaf.path)
        if action is None:
            return "None"
        read = f"{var}.get({leaf.name!r})"
        if action is COPY:
            return read
        name = f"t{len(namespace)}"
        namespace[name] = action
        if leaf.path in linked:
            return f"{name}(p.get({leaf.path!r}, {read}))"
        return f"{name}({read})"

    def record_expr(node: ViewRecord, var: str) -> str:
        items: list[str] = []
        for child in node.children:
            if isinstance(child, ViewRecord):
                counter[0] += 1
                child_var = f"n{counter[0]}"
                lines.append(f"    {child_var} = None if {var} is None else "
                             f"{var}.get({child.name!r})")
                inner = record_expr(child, child_var)
                items.append(f"{child.name!r}: (None if {child_var} is None else {inner})")
            else:
                items.append(f"{child.name!r}: {value_of(child, var)}")
        return "{" + ", ".join(items) + "}"

    body = record_expr(layout.root, "r")
    source = "def project(r, p=_NO_IDS):\n" + "".join(line + "\n" for line in lines)
    source += f"    return {body}\n"
    # The transforms in the order the source names them (t1, t2, ...).
    key = (source, tuple(action for name, action in namespace.items() if name != "_NO_IDS"))
    if compiled is not None and key in compiled:
        return compiled[key]
    # Generated once per compiled plan from schema field names only (see module doc);
    # this is what keeps the per-event path to a single dict expression.
    exec(compile(source, f"<view {layout.subscription_id}>", "exec"), namespace)  # noqa: S102
    project: Projection = namespace["project"]
    if compiled is not None:
        compiled[key] = project
    return project
