"""Where the sharing map draws each agency and agreement: a circle of agencies, each
agreement a curved arrow from source to recipient. Pure geometry, computed on the
server, so the map is plain SVG in the page and needs no script."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 960, 640
NODE_RADIUS = 34
_SPREAD = 46.0


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    x: float
    y: float
    label_x: float
    label_y: float
    anchor: str


@dataclass(frozen=True, slots=True)
class Edge:
    id: str
    path: str
    """SVG path data: a quadratic curve ending at the recipient's rim."""
    label_x: float
    label_y: float


@dataclass(frozen=True, slots=True)
class MapLayout:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int = WIDTH
    height: int = HEIGHT


def _nodes(ids: Sequence[str]) -> dict[str, Node]:
    cx, cy = WIDTH / 2, HEIGHT / 2
    radius = min(cx, cy) - 90
    placed: dict[str, Node] = {}
    for i, node_id in enumerate(ids):
        angle = -math.pi / 2 + 2 * math.pi * i / max(len(ids), 1)
        x, y = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
        out = NODE_RADIUS + 14
        lx, ly = x + out * math.cos(angle), y + out * math.sin(angle) + 5
        anchor = "middle" if abs(math.cos(angle)) < 0.3 else (
            "start" if math.cos(angle) > 0 else "end")
        placed[node_id] = Node(node_id, round(x, 1), round(y, 1), round(lx, 1),
                               round(ly, 1), anchor)
    return placed


def layout(agencies: Sequence[str], edges: Sequence[tuple[str, str, str]]) -> MapLayout:
    """Lay out `agencies` and `edges` given as (edge id, source id, recipient id)."""
    nodes = _nodes(agencies)
    by_pair: dict[tuple[str, str], list[str]] = {}
    for edge_id, source, recipient in edges:
        by_pair.setdefault((source, recipient), []).append(edge_id)
    drawn: list[Edge] = []
    for (source, recipient), ids in by_pair.items():
        a, b = nodes.get(source), nodes.get(recipient)
        if a is None or b is None or a is b:
            continue
        dx, dy = b.x - a.x, b.y - a.y
        length = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / length, dx / length  # left of the direction of travel
        for i, edge_id in enumerate(ids):
            # Each direction bends to its own side, so A→B and B→A never overlap.
            bend = _SPREAD * (1 + i)
            mx, my = (a.x + b.x) / 2 + nx * bend, (a.y + b.y) / 2 + ny * bend
            sx, sy = _toward(a.x, a.y, mx, my, NODE_RADIUS)
            ex, ey = _toward(b.x, b.y, mx, my, NODE_RADIUS + 6)
            # The curve's midpoint (t = 0.5) is where its label goes.
            lx, ly = 0.25 * sx + 0.5 * mx + 0.25 * ex, 0.25 * sy + 0.5 * my + 0.25 * ey
            drawn.append(Edge(edge_id, f"M {sx:.1f} {sy:.1f} Q {mx:.1f} {my:.1f} "
                                       f"{ex:.1f} {ey:.1f}", round(lx, 1), round(ly, 1)))
    return MapLayout(tuple(nodes.values()), tuple(drawn))


def _toward(x: float, y: float, tx: float, ty: float, distance: float
            ) -> tuple[float, float]:
    dx, dy = tx - x, ty - y
    length = math.hypot(dx, dy) or 1.0
    return x + dx / length * distance, y + dy / length * distance
