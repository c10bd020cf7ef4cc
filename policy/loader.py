"""Loading a policy bundle folder (skeleton; filled in by the next change)."""

from __future__ import annotations

from pathlib import Path

from policy.bundle import PolicyBundle
from schemas.catalog import SchemaCatalog


def load_bundle(directory: Path | str, catalog: SchemaCatalog) -> PolicyBundle:
    """Load and check every file of a bundle folder; raise `BundleError` listing every
    problem at once."""
    raise NotImplementedError
