"""The linkage library stays a library: it imports nothing of the broker or connectors."""

from __future__ import annotations

import ast
from pathlib import Path

LINKAGE = Path(__file__).parents[3] / "linkage"


def test_linkage_imports_neither_broker_nor_connectors():
    offenders = []
    for source in sorted(LINKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{source.name}: {n}" for n in names
                          if n.split(".")[0] in ("broker", "connectors")]
    assert offenders == []
