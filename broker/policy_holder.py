"""The policy bundle in force and its compiled engine, swapped atomically on reload.

A reload that fails leaves the last good bundle in force and says why.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from policy import BundleError, PolicyBundle, PolicyEngine, load_bundle
from schemas.catalog import SchemaCatalog

log = logging.getLogger("handoff.policy")


@dataclass(frozen=True)
class LoadedPolicy:
    bundle: PolicyBundle
    engine: PolicyEngine


class PolicyHolder:
    def __init__(self, directory: Path, catalog: SchemaCatalog, pseudonym_key: bytes) -> None:
        self.directory = directory
        self._catalog = catalog
        self._key = pseudonym_key
        self._lock = threading.Lock()
        self._current = self._load()
        self.last_error: str | None = None
        self.last_problems: list[str] = []
        """Every problem of the last refused reload, each naming file, line and field."""

    def _load(self) -> LoadedPolicy:
        bundle = load_bundle(self.directory, self._catalog)
        return LoadedPolicy(bundle, PolicyEngine(bundle, self._catalog,
                                                 pseudonym_key=self._key))

    @property
    def bundle(self) -> PolicyBundle:
        return self._current.bundle

    @property
    def engine(self) -> PolicyEngine:
        return self._current.engine

    def reload(self) -> bool:
        """Load the folder again. True if a new version is now in force."""
        with self._lock:
            try:
                loaded = self._load()
            except BundleError as exc:
                self.last_problems = [str(p) for p in exc.problems]
                self.last_error = f"{len(exc.problems)} problem(s); first: {exc.problems[0]}"
                log.error("policy reload refused, keeping version %s in force: %s",
                          self.bundle.version, self.last_error)
                return False
            self.last_error = None
            self.last_problems = []
            changed = loaded.bundle.version != self.bundle.version
            self._current = loaded
            return changed
