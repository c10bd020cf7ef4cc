"""Where a subscriber keeps its place: a cursor per subscription.

The client saves a page's cursor only once the caller has handled the page (when it
asks for the next one), so after a crash the last page comes again: delivery is at
least once, and `event_id` and `decision_id` tell a repeat.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Protocol


class CursorStore(Protocol):
    """Keeps the cursor of each subscription a client reads."""

    def load(self, subscription: str) -> str | None:
        """The saved cursor, or None to start from the beginning."""
        ...

    def save(self, subscription: str, cursor: str) -> None:
        """Remember `cursor` durably before returning."""
        ...


class MemoryCursorStore:
    """Cursors for the life of the process."""

    def __init__(self) -> None:
        self._cursors: dict[str, str] = {}

    def load(self, subscription: str) -> str | None:
        return self._cursors.get(subscription)

    def save(self, subscription: str, cursor: str) -> None:
        self._cursors[subscription] = cursor


class FileCursorStore:
    """Cursors in one JSON file, replaced atomically (write aside, fsync, rename), so a
    crash leaves either the old cursors or the new ones."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, str]:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.path}:{exc.lineno}: not a cursor file (invalid JSON)"
                             ) from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{self.path}:1: not a cursor file (expected an object)")
        return {str(k): str(v) for k, v in loaded.items()}

    def load(self, subscription: str) -> str | None:
        with self._lock:
            return self._read().get(subscription)

    def save(self, subscription: str, cursor: str) -> None:
        with self._lock:
            cursors = {**self._read(), subscription: cursor}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            draft = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            with draft.open("w", encoding="utf-8") as out:
                json.dump(cursors, out, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(draft, self.path)
