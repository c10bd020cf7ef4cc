"""Dry-runs kept for a while after they ran, so an admin can apply exactly what was
tried: the candidate's files stay in a private temporary folder until applied, replaced
or an hour old."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from broker.policy_trial import TrialReport

KEEP_MS = 3_600_000
KEEP_TRIALS = 10


@dataclass(frozen=True, slots=True)
class KeptTrial:
    id: str
    folder: Path
    """The candidate bundle's folder (inside `scratch`)."""
    scratch: Path
    report: TrialReport
    source: str
    """What was tried, for people: the uploaded file's name or the server path."""
    by: str
    at_ms: int


class TrialShelf:
    def __init__(self) -> None:
        self._trials: dict[str, KeptTrial] = {}
        self._lock = threading.Lock()

    @staticmethod
    def scratch() -> Path:
        return Path(tempfile.mkdtemp(prefix="handoff-console-trial-"))

    def keep(self, folder: Path, scratch: Path, report: TrialReport, source: str, by: str,
             now_ms: int) -> KeptTrial:
        trial = KeptTrial(secrets.token_hex(8), folder, scratch, report, source, by, now_ms)
        with self._lock:
            stale = [t for t in self._trials.values() if now_ms - t.at_ms > KEEP_MS]
            stale += list(self._trials.values())[:-KEEP_TRIALS + 1] if len(
                self._trials) >= KEEP_TRIALS else []
            for old in stale:
                self._trials.pop(old.id, None)
                shutil.rmtree(old.scratch, ignore_errors=True)
            self._trials[trial.id] = trial
        return trial

    def get(self, trial_id: str, now_ms: int) -> KeptTrial | None:
        with self._lock:
            trial = self._trials.get(trial_id)
        return trial if trial is not None and now_ms - trial.at_ms <= KEEP_MS else None

    def drop(self, trial_id: str) -> None:
        with self._lock:
            trial = self._trials.pop(trial_id, None)
        if trial is not None:
            shutil.rmtree(trial.scratch, ignore_errors=True)


def trial_shelf(request: Request) -> TrialShelf:
    shelf: TrialShelf = request.app.state.console_trials
    return shelf
