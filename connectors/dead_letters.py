"""Why a connector gave up on one record: the value written to the dead-letter log.

It holds the reason (field paths and problems) and where the record is in its source,
never the record's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FieldProblem = tuple[str, str]
"""(field path, problem), for example `("child.birth_date", "expected a date")`. The
problem names what is wrong, never the value."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why a connector gave up on one record, and where that record is in its source."""

    connector: str
    problems: tuple[FieldProblem, ...]
    event_type: str | None = None
    event_id: str | None = None
    reference: str | None = None
    position: dict[str, Any] | None = None
    at_ms: int = 0
    offset: int | None = None
    """Where the dead letter sits in `_connect.dead_letters` (set when read back)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "reference": self.reference,
            "position": self.position,
            "problems": [{"path": p, "problem": m} for p, m in self.problems],
            "at_ms": self.at_ms,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], offset: int | None = None) -> DeadLetter:
        return cls(
            connector=doc["connector"],
            problems=tuple((p["path"], p["problem"]) for p in doc["problems"]),
            event_type=doc.get("event_type"),
            event_id=doc.get("event_id"),
            reference=doc.get("reference"),
            position=doc.get("position"),
            at_ms=int(doc.get("at_ms", 0)),
            offset=offset,
        )
