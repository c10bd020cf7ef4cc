"""What one `handoff serve` process does: its roles, and the guard that keeps the
embedded log to one router process.

A process takes any of three roles:

- `api`: publish, explain, registry and audit endpoints (and the ingest path behind them);
- `delivery`: the pull and server-sent-event endpoints subscribers read from;
- `router`: the router thread and the audit checkpoints, with a small HTTP server for
  `/healthz`, `/readyz` and `/metrics` when it serves no other role.

`all` (the default) is all three, the single process of a small installation. Every
process serves `/healthz`, `/readyz` and `/metrics`.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from broker.errors import ConfigError


class Part(StrEnum):
    API = "api"
    DELIVERY = "delivery"
    ROUTER = "router"


class RoleError(ConfigError):
    """A `--role` value is not understood."""


class RouterAlreadyRunningError(ConfigError):
    """Another router process already routes the embedded log in this data directory."""


@dataclass(frozen=True)
class Roles:
    """The set of parts one process runs."""

    parts: frozenset[Part]

    @classmethod
    def all(cls) -> Roles:
        return cls(frozenset(Part))

    @classmethod
    def parse(cls, text: str) -> Roles:
        """`all`, or one or more of `api`, `delivery`, `router` separated by commas."""
        names = [name.strip().lower() for name in text.split(",") if name.strip()]
        if not names:
            raise RoleError("--role needs a value: all, api, delivery or router")
        if names == ["all"]:
            return cls.all()
        parts: set[Part] = set()
        for name in names:
            try:
                parts.add(Part(name))
            except ValueError:
                raise RoleError(
                    f"unknown role {name!r}; use all, or any of api, delivery, router "
                    "separated by commas"
                ) from None
        return cls(frozenset(parts))

    @property
    def api(self) -> bool:
        return Part.API in self.parts

    @property
    def delivery(self) -> bool:
        return Part.DELIVERY in self.parts

    @property
    def router(self) -> bool:
        return Part.ROUTER in self.parts

    @property
    def serves_clients(self) -> bool:
        """Whether agencies call this process (and so it needs the API keys)."""
        return self.api or self.delivery

    def without_router(self) -> Roles:
        """These roles but the router's (which then runs in a process of its own)."""
        return Roles(self.parts - {Part.ROUTER})

    def __str__(self) -> str:
        if self.parts == frozenset(Part):
            return "all"
        return ",".join(sorted(self.parts))


class RouterLock:
    """An exclusive lock on `<data_dir>/router.lock`, held while a process routes.

    The embedded log coordinates a consumer group only among members inside one process,
    so two router processes on one data directory would both route every event. The
    lock refuses the second; the operating system releases it when its holder exits,
    `kill -9` included, so a restarted router never finds a stale lock.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "router.lock"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RouterAlreadyRunningError(
                f"another router process already routes the embedded log in {data_dir}; "
                "run exactly one process with the router role per data directory (to "
                "scale routers out, use the Kafka backend)"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"{self.path}: cannot lock: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        """Let another router process start. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the lock
