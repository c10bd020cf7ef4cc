"""`referrals/` stays pure: nothing of the broker or the connector SDK, no I/O library.
The broker wires it in; the store adapters that do I/O live in `broker/`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "referrals"
FORBIDDEN = ("broker", "connectors", "sqlite3", "socket", "subprocess", "httpx", "kafka",
             "psycopg", "fastapi", "os", "pathlib", "shutil", "tempfile")


@pytest.mark.parametrize("module", sorted(p.name for p in PACKAGE.glob("*.py")))
def test_imports_nothing_impure(module):
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & set(FORBIDDEN), imported & set(FORBIDDEN)
