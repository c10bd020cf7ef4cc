"""Installing a tried bundle into the policy folder, then reloading as the API does.

The console's dry-run applies a candidate bundle from here: its YAML files replace
those of the policy folder (`--policy`), and `PolicyReloader.reload` takes it into force
exactly as `POST /v1/admin/policy:reload` would (audited, delivery topics made first).
If the reload is refused, the folder is put back as it was, so the folder and the
policy in force never disagree.
"""

from __future__ import annotations

import os
from pathlib import Path

from broker.errors import BrokerError
from broker.policy_holder import PolicyHolder
from broker.reloads import PolicyReload, PolicyReloader


class PolicyInstallError(BrokerError):
    """The candidate cannot be installed (it changed, or the folder is read-only)."""


def _yaml_files(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for path in sorted(root.rglob("*.yaml")):
        if path.is_symlink() or not path.is_file():
            continue
        found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        draft = target.with_name(f".{target.name}.installing")
        draft.write_bytes(content)
        os.replace(draft, target)


class PolicyInstaller:
    def __init__(self, policy: PolicyHolder, reloader: PolicyReloader) -> None:
        self._policy = policy
        self._reloader = reloader

    def install(self, candidate: Path, expected_version: str, load_version: str,
                actor: str) -> PolicyReload:
        """Copy `candidate`'s YAML files into the policy folder and reload.

        `load_version` is the version the candidate loads as now; it must be the
        `expected_version` the dry-run showed, so what is applied is what was tried.
        """
        if load_version != expected_version:
            raise PolicyInstallError(
                f"the candidate bundle now loads as {load_version}, not the "
                f"{expected_version} that was tried; run the dry-run again")
        root = self._policy.directory
        before = _yaml_files(root)
        after = _yaml_files(candidate)
        try:
            for rel in before.keys() - after.keys():
                (root / rel).unlink()
            _write(root, after)
        except OSError as exc:
            self._restore(root, before, after)
            raise PolicyInstallError(
                f"cannot write the policy folder ({exc.strerror or exc}); the policy in "
                "force is unchanged") from exc
        outcome = self._reloader.reload(actor)
        if not outcome.applied:
            self._restore(root, before, after)
        return outcome

    @staticmethod
    def _restore(root: Path, before: dict[str, bytes], after: dict[str, bytes]) -> None:
        for rel in after.keys() - before.keys():
            (root / rel).unlink(missing_ok=True)
        _write(root, before)
