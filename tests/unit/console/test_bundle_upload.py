"""Unpacking an uploaded policy bundle: only YAML, never outside its folder."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from broker.console.bundle_upload import MAX_FILE_BYTES, unpack_bundle
from broker.console.errors import ConsoleRefused


def _zip(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return out.getvalue()


def test_a_zipped_policy_folder_unpacks_its_yaml_only(tmp_path: Path) -> None:
    data = _zip({"policy/agencies.yaml": b"agencies: []\n",
                 "policy/agreements/a.yaml": b"agreements: []\n",
                 "policy/README.md": b"notes", "policy/run.sh": b"rm -rf /"})
    root = unpack_bundle(data, tmp_path)
    assert root == tmp_path / "policy"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "agencies.yaml", "agreements/a.yaml"]


@pytest.mark.parametrize("name", ["../agencies.yaml", "/etc/agencies.yaml",
                                  "policy/../../x.yaml", "C:/x.yaml", "a\\..\\b.yaml"])
def test_paths_that_leave_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConsoleRefused, match="unsafe path"):
        unpack_bundle(_zip({"agencies.yaml": b"", name: b"x"}), tmp_path / "t")
    assert not (tmp_path / "agencies.yaml").exists()


def test_symbolic_links_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConsoleRefused, match="symbolic link"):
        unpack_bundle(_zip({"agencies.yaml": b""}, links=("agreements.yaml",)), tmp_path)


def test_a_file_that_decompresses_past_the_cap_is_refused(tmp_path: Path) -> None:
    bomb = _zip({"agencies.yaml": b"#" * (MAX_FILE_BYTES + 1)})
    assert len(bomb) < 50_000
    with pytest.raises(ConsoleRefused, match="more than a policy bundle"):
        unpack_bundle(bomb, tmp_path)


def test_not_a_zip_and_no_agencies_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConsoleRefused, match="not a zip"):
        unpack_bundle(b"PK but not really", tmp_path / "a")
    with pytest.raises(ConsoleRefused, match=r"no agencies\.yaml"):
        unpack_bundle(_zip({"x/y/agencies.yaml": b""}), tmp_path / "b")
