"""Errors raised by the policy library.

`PolicyError` is the root; `BundleError` carries every problem found in a policy bundle at
once, each naming the file, line and field, so a data steward can fix them in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas.errors import HandoffError


class PolicyError(HandoffError, ValueError):
    """Root of every error the policy library raises."""


class UnknownSubscriptionError(PolicyError, LookupError):
    """No subscription with that id exists in the bundle."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or worth a warning) in a policy bundle.

    `file` is relative to the bundle folder (default rule packs are named
    `<default>/rulepacks/<regime>.yaml`), `line` is 1-based (None when unknown),
    `location` is the field inside the entry (`fields[3]`, `when.tags[0]`).
    """

    file: str
    line: int | None
    location: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        prefix = "warning: " if self.severity == "warning" else ""
        if self.location:
            return f"{where}: {self.location}: {prefix}{self.message}"
        return f"{where}: {prefix}{self.message}"


class BundleError(PolicyError):
    """A policy bundle could not be loaded. `problems` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{len(problems)} problem(s) in policy bundle: {shown}{more}")
