"""`handoff connect new NAME`: a connector package that installs, registers and passes
its own test, written from the templates in `connectors/templates/`.

The package gets a pyproject with the `handoff.connectors` entry point, a module with a
config and a source connector class (reading a JSON-lines export, to be replaced by the
integrator's system), a README, and a test that runs the connector through
`broker.testing.ConnectorHarness`.
"""

from __future__ import annotations

import re
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from connectors.errors import ConnectorConfigError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


def names_for(name: str) -> dict[str, str]:
    """The names a connector called `name` (like `acme-cms`) uses throughout."""
    if not NAME_PATTERN.fullmatch(name):
        raise ConnectorConfigError(
            f"'{name}' is not a usable connector name: use lower-case letters, digits and "
            "single '-' or '_' between them, starting with a letter (e.g. acme-cms)")
    words = re.split(r"[-_]", name)
    type_name = "_".join(words)
    return {
        "name": name,
        "type_name": type_name,
        "package": f"handoff_{type_name}",
        "dist_name": f"handoff-{'-'.join(words)}",
        "class_prefix": "".join(w.capitalize() for w in words),
        "title": " ".join(w.capitalize() for w in words),
    }


def scaffold(name: str, parent: Path) -> Path:
    """Write the package for connector `name` into `parent/<name>`; returns that folder.

    Refuses to write into an existing, non-empty folder.
    """
    values = names_for(name)
    target = parent / name
    if target.exists() and any(target.iterdir()):
        raise ConnectorConfigError(f"{target} already exists and is not empty; choose "
                                   "another name or folder")
    root = files("connectors").joinpath("templates/source")
    for source, relative in _walk(root, ()):
        parts = [values["package"] if p == "package" else p for p in relative]
        parts[-1] = parts[-1].removesuffix(".tmpl").replace(
            "test_package.py", f"test_{values['type_name']}.py")
        out = target.joinpath(*parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(Template(source.read_text(encoding="utf-8")).substitute(values),
                       encoding="utf-8")
    return target


def _walk(folder: Traversable, prefix: tuple[str, ...]
          ) -> list[tuple[Traversable, tuple[str, ...]]]:
    found: list[tuple[Traversable, tuple[str, ...]]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            found.extend(_walk(entry, (*prefix, entry.name)))
        elif entry.name.endswith(".tmpl"):
            found.append((entry, (*prefix, entry.name)))
    return found
