"""Files in a drop folder, handled without trusting their names or links.

A drop folder is written by someone else (an agency's transfer account), so nothing in it
is followed or trusted to fit: symbolic links are refused unread, files are opened with
`O_NOFOLLOW`, and every name made from a dropped file's name (its report, a second copy's
`-2`) is kept within the file system's limit on names.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

REPORT = ".report.json"
NAME_RESERVE = 24
"""Bytes a file name must leave free for what is made from it: `.` + `.report.json.tmp`
(17) and a `-NNNN` suffix when the name was used before."""
LINK_REFUSED = ("a symbolic link: links are never followed; drop the file itself, not a "
                "link to it")


def is_file_or_link(path: Path) -> bool:
    """A regular file, or a symbolic link (to anything, or dangling), without following
    the link."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def open_binary(path: Path) -> io.BufferedReader:
    """Open for reading without following a symbolic link (ELOOP if it is one)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    return os.fdopen(fd, "rb")


def open_text(path: Path, encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(open_binary(path), encoding=encoding, newline="")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_binary(path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def name_limit(folder: Path) -> int:
    """The longest file name (bytes) the drop accepts in `folder`'s file system."""
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    return max(16, (name_max if name_max > 0 else 255) - NAME_RESERVE)


def shortened(name: str, limit: int) -> str:
    """`name`, or when it is longer than `limit` bytes its start, `~`, a digest of the
    whole name and its suffix: short enough, and distinct for distinct names."""
    if len(os.fsencode(name)) <= limit:
        return name
    stem, suffix = os.path.splitext(name)
    suffix = suffix if len(os.fsencode(suffix)) <= 16 else ""
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:12]
    room = limit - len(os.fsencode(tag + suffix))
    start = os.fsencode(stem)[:room].decode(errors="ignore")
    return f"{start}{tag}{suffix}"


def free_name(folder: Path, name: str, limit: int) -> Path:
    """`folder/name`, or `folder/name-2`, `-3`… when an earlier file had that name."""
    target = folder / name
    stem, suffix = os.path.splitext(name)
    n = 2
    while target.exists() or target.is_symlink():
        target = folder / shortened(f"{stem}-{n}{suffix}", limit + NAME_RESERVE - 17)
        n += 1
    return target


def refusal(path: Path, folder: Path) -> str | None:
    """Why a dropped file is refused without being opened: a symbolic link, not a
    regular file, or a name too long for its report. None when it may be read.
    Raises OSError when it cannot be looked at."""
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        return LINK_REFUSED
    if not stat.S_ISREG(mode):
        return "not a regular file"
    limit = name_limit(folder)
    size = len(os.fsencode(path.name))
    if size > limit:
        return (f"the file name is {size} bytes; names longer than {limit} bytes are "
                "refused (the report beside the file would not fit the file system's "
                "limit): rename the file and drop it again")
    return None
