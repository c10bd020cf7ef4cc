"""Connectors that misbehave on purpose, for the runtime's restart and status tests.

Registered by the tests under types `test_flaky` and `test_fatal` (see `register`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Literal

from connectors.base import (
    ConnectorContext,
    Rejected,
    SourceConfig,
    SourceConnector,
    SourceRecord,
)
from connectors.errors import FatalConnectorError


def birth(subject_id: str) -> dict:
    example = json.loads(files("schemas").joinpath("events/birth.example.json").read_text())
    example.pop("event_id")
    return {**example, "subject_id": subject_id}


class FlakyConfig(SourceConfig):
    type: Literal["test_flaky"] = "test_flaky"
    failures_file: Path
    """Holds how many more times `start` should fail (a file survives the instance)."""
    records: int = 3


class FlakySource(SourceConnector[FlakyConfig]):
    """Fails in `start` while failures_file counts down, with a message that holds a
    (pretend) personal value; then publishes `records` births, one per poll."""

    config_model = FlakyConfig

    def start(self, context: ConnectorContext) -> None:
        left = int(self.config.failures_file.read_text())
        if left > 0:
            self.config.failures_file.write_text(str(left - 1))
            raise KeyError("512-44-9031")
        self._next = int(context.offset["n"]) if context.offset else 0

    def poll(self) -> Sequence[SourceRecord | Rejected]:
        if self._next >= self.config.records:
            return []
        self._next += 1
        return [SourceRecord("birth", birth(f"MPI-{self._next}"), {"n": self._next})]


class FatalConfig(SourceConfig):
    type: Literal["test_fatal"] = "test_fatal"


class FatalSource(SourceConnector[FatalConfig]):
    config_model = FatalConfig

    def start(self, context: ConnectorContext) -> None:
        raise FatalConnectorError("the export folder is gone; fix 'folder'")

    def poll(self) -> Sequence[SourceRecord | Rejected]:
        return []


TYPES = {"test_flaky": f"{__name__}:FlakySource", "test_fatal": f"{__name__}:FatalSource"}
