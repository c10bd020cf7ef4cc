"""Reading bundle YAML with positions, so every problem can name its file and line.

ruamel.yaml's round-trip loader keeps the line of every key and list item; `YamlDocument`
turns a location path (as pydantic reports it, or as a cross-check builds it) into the
line of the deepest node that exists and a short `fields[3].transform`-style label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from policy.errors import Problem
from policy.model import FIELD_PATH_PATTERN, IDENTIFIER_PATTERN, NAME_PATTERN

Loc = Sequence[str | int]
NESTED_TOO_DEEPLY = "nested too deeply for the parser"

_MESSAGE_PREFIXES = ("Value error, ", "Assertion failed, ")
_PATTERN_HINTS = {
    IDENTIFIER_PATTERN: "use lower-case letters, digits, '-', '_' and '.' (for example "
                        "hv-births), at most 63 characters",
    NAME_PATTERN: "use lower-case letters, digits and '_' (for example care_coordination), "
                  "at most 63 characters",
    FIELD_PATH_PATTERN: "a field is a dotted path of field names (for example mother.zip)",
}


@dataclass(frozen=True)
class YamlDocument:
    """One parsed YAML file and its name relative to the bundle folder."""

    name: str
    data: Any

    def locate(self, loc: Loc) -> tuple[int | None, list[str | int]]:
        """The 1-based line of the deepest existing node on `loc`, and the loc parts that
        matched (parts that name no node, such as pydantic's union branches, are skipped)."""
        node = self.data
        line: int | None = None
        matched: list[str | int] = []
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif (isinstance(node, CommentedSeq) and isinstance(part, int)
                  and 0 <= part < len(node)):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                continue
            matched.append(part)
        if line is None and isinstance(self.data, CommentedMap | CommentedSeq):
            line = self.data.lc.line + 1
        return line, matched

    def problem(
        self, loc: Loc, message: str, *, entry_depth: int = 2, severity: str = "error"
    ) -> Problem:
        """A problem at `loc`; the first `entry_depth` parts (`agreements`, 3) are left out
        of the label because the line already says which entry it is."""
        line, matched = self.locate(loc)
        label = format_location(matched[entry_depth:] if len(matched) >= entry_depth
                                else matched)
        return Problem(self.name, line, label, message,
                       "warning" if severity == "warning" else "error")


def format_location(parts: Sequence[str | int]) -> str:
    """`("fields", 3, "transform")` → `fields[3].transform`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _DatesAsText(RoundTripConstructor):
    """Leaves dates as text, so an impossible date (2026-13-01) becomes a field problem
    with its line from validation instead of an exception inside the YAML parser."""


_DatesAsText.add_constructor("tag:yaml.org,2002:timestamp",
                             RoundTripConstructor.construct_yaml_str)


def read_yaml(path: Path, name: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse one file; a syntax error becomes a problem at its line."""
    yaml = YAML(typ="rt")
    yaml.Constructor = _DatesAsText
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, None, "", f"cannot read file: {exc.__class__.__name__}")]
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = (exc.problem or exc.context or "invalid YAML").strip()
        return None, [Problem(name, line, "", f"invalid YAML: {what}")]
    except (YAMLError, ValueError) as exc:
        return None, [Problem(name, None, "", f"invalid YAML: {exc.__class__.__name__}")]
    except RecursionError:
        return None, [Problem(name, None, "", f"invalid YAML: {NESTED_TOO_DEEPLY}")]
    return YamlDocument(name, data), []


def validation_problems(
    doc: YamlDocument, exc: ValidationError, prefix: Loc = (), entry_depth: int = 2
) -> list[Problem]:
    """Translate pydantic's errors into problems, one per distinct position."""
    problems: list[Problem] = []
    seen: set[tuple[int | None, str]] = set()
    for error in exc.errors(include_url=False, include_input=False):
        loc = (*prefix, *error["loc"])
        message = str(error["msg"])
        for lead in _MESSAGE_PREFIXES:
            message = message.removeprefix(lead)
        if error["type"] == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'"
        elif error["type"] == "missing":
            message = f"missing required key '{loc[-1]}'"
        elif error["type"] == "string_pattern_mismatch":
            message = _PATTERN_HINTS.get(str((error.get("ctx") or {}).get("pattern")), message)
        problem = doc.problem(loc, message, entry_depth=entry_depth)
        key = (problem.line, problem.location)
        if key in seen:
            continue
        seen.add(key)
        problems.append(problem)
    return problems
