"""A policy bundle uploaded as a zip, unpacked safely into a folder of its own.

Only YAML files are taken. Refused outright: absolute paths, `..`, backslashes, drive
letters, symbolic links, more than `MAX_ENTRIES` entries, a file over `MAX_FILE_BYTES`
or a total over `MAX_TOTAL_BYTES` once decompressed (counted while reading, whatever the
zip's headers claim). A zip holding one top-level folder is taken from inside it.
"""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path, PurePosixPath

from broker.console.errors import ConsoleRefused

MAX_ENTRIES = 500
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_TOTAL_BYTES = 16 * 1024 * 1024
_CHUNK = 65_536


def _safe_name(name: str) -> PurePosixPath:
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ConsoleRefused(422, f"the zip holds an unsafe path: {name[:120]!r}")
    path = PurePosixPath(name)
    if any(part in ("..", "") for part in path.parts) or path.is_absolute():
        raise ConsoleRefused(422, f"the zip holds an unsafe path: {name[:120]!r}")
    return path


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def unpack_bundle(data: bytes, target: Path) -> Path:
    """Unpack the YAML files of a zipped bundle under `target`; returns the folder that
    holds `agencies.yaml`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ConsoleRefused(422, "the upload is not a zip file") from exc
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            raise ConsoleRefused(422, f"the zip holds more than {MAX_ENTRIES} entries")
        total = 0
        for info in entries:
            path = _safe_name(info.filename)
            if _is_link(info):
                raise ConsoleRefused(422, f"the zip holds a symbolic link: {info.filename!r}")
            if info.is_dir() or path.suffix not in (".yaml", ".yml"):
                continue
            destination = target.joinpath(*path.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with archive.open(info) as source, destination.open("wb") as out:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if written > MAX_FILE_BYTES or total > MAX_TOTAL_BYTES:
                        raise ConsoleRefused(422, "the zip unpacks to more than a policy "
                                             "bundle can hold")
                    out.write(chunk)
    return bundle_root(target)


def bundle_root(target: Path) -> Path:
    if (target / "agencies.yaml").is_file():
        return target
    inner = [p for p in target.iterdir() if p.is_dir()]
    if len(inner) == 1 and (inner[0] / "agencies.yaml").is_file():
        return inner[0]
    raise ConsoleRefused(422, "no agencies.yaml at the top of the zip (or of its one "
                         "folder): zip the policy folder itself")


def copy_bundle(source: Path, target: Path) -> Path:
    """Snapshot the YAML files of a bundle folder on the server (no links followed)."""
    if not source.is_dir():
        raise ConsoleRefused(422, "that path is not a folder on the server")
    for path in sorted(source.rglob("*.yaml")):
        if path.is_symlink() or not path.is_file():
            continue
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(path.read_bytes()[:MAX_FILE_BYTES + 1])
    return bundle_root(target)
