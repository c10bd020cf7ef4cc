"""The policy bundle in force, handed out as one immutable `LoadedPolicy`.

A reader takes `holder.current` once (per router batch, per request) and uses that one
value throughout: bundle, compiled engine, version and view schemas always belong
together, so a reload in the middle never mixes two versions. A reload swaps the
current value atomically; one that fails leaves the last good bundle in force and says
why.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from broker.view_schemas import ViewSchemaRegistrar, ViewSchemas
from policy import BundleError, PolicyBundle, PolicyEngine, load_bundle
from schemas.catalog import SchemaCatalog

log = logging.getLogger("handoff.policy")


@dataclass(frozen=True)
class LoadedPolicy:
    """One version of the policy: the bundle, its engine and its view schemas."""

    bundle: PolicyBundle
    engine: PolicyEngine
    views: ViewSchemas

    @property
    def version(self) -> str:
        return self.bundle.version


class PolicyHolder:
    def __init__(self, directory: Path, catalog: SchemaCatalog, pseudonym_key: bytes,
                 views: ViewSchemaRegistrar) -> None:
        self.directory = directory
        self._catalog = catalog
        self._key = pseudonym_key
        self._views = views
        self._lock = threading.Lock()
        self._current = self._load()
        self.last_error: str | None = None
        self.last_problems: list[str] = []
        """Every problem of the last refused reload, each naming file, line and field."""

    def _load(self) -> LoadedPolicy:
        bundle = load_bundle(self.directory, self._catalog)
        engine = PolicyEngine(bundle, self._catalog, pseudonym_key=self._key)
        return LoadedPolicy(bundle, engine, ViewSchemas(engine, self._views))

    @property
    def current(self) -> LoadedPolicy:
        """The policy in force. Read it once and keep the value for the whole unit of
        work (a batch, a request)."""
        return self._current

    def reload(self) -> bool:
        """Load the folder again. True if a new version is now in force."""
        with self._lock:
            before = self._current
            try:
                loaded = self._load()
            except (BundleError, RecursionError) as exc:
                # A bundle nested deeper than any reader allows is refused like any other.
                self.last_problems = ([str(p) for p in exc.problems]
                                      if isinstance(exc, BundleError)
                                      else ["the bundle is nested too deeply to read"])
                self.last_error = (f"{len(self.last_problems)} problem(s); first: "
                                   f"{self.last_problems[0]}")
                log.error("policy reload refused, keeping version %s in force: %s",
                          before.version, self.last_error)
                return False
            self.last_error = None
            self.last_problems = []
            self._current = loaded
            return loaded.version != before.version
