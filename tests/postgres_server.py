"""A real PostgreSQL server for tests, started from the Debian packages' binaries.

`PostgresServer` runs `initdb` into a fresh temporary folder and `pg_ctl start` on a
free loopback port, with its unix socket in that folder. PostgreSQL refuses to run as
root, so when the tests run as root the folder is handed to the `postgres` system user
(or `nobody`) and the server commands run through `runuser`. Clients connect over TCP
to 127.0.0.1 as the trust-authenticated superuser `handoff`.

The `postgres_server` session fixture shares one server across the run; each test takes
a database of its own from `postgres_database`:

    from tests.postgres_server import postgres_database, postgres_server  # noqa: F401

    def test_something(postgres_database):
        with psycopg.connect(postgres_database) as conn: ...

Binaries come from `HANDOFF_PG_BIN`, else `/usr/lib/postgresql/15/bin`, else the newest
`/usr/lib/postgresql/*/bin` (`apt-get install postgresql` provides one).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka_broker import free_port

SUPERUSER = "handoff"


def postgres_bin() -> Path:
    """The folder holding initdb and pg_ctl; raise with an install hint if there is none."""
    wanted = os.environ.get("HANDOFF_PG_BIN")
    candidates = [Path(wanted)] if wanted else []
    candidates.append(Path("/usr/lib/postgresql/15/bin"))
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted((p for p in root.iterdir() if p.name.isdigit()),
                          key=lambda p: int(p.name), reverse=True)
        candidates.extend(v / "bin" for v in versions)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise RuntimeError("the PostgreSQL tests need a server: apt-get install -y postgresql-15 "
                       "(or set HANDOFF_PG_BIN to the folder holding initdb and pg_ctl)")


def _server_user() -> str | None:
    """The unprivileged user to run the server as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, and there is no 'postgres' or 'nobody' user to "
                       "run PostgreSQL as")


class PostgresServer:
    """One PostgreSQL server in a temporary folder, for as long as the object lives."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.user = _server_user()
        # Not under pytest's tmp_path: its parents are private to root, and the server
        # user must be able to reach its data folder.
        self.root = Path(tempfile.mkdtemp(prefix="handoff-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.port = free_port()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")
        self.start()

    @property
    def dsn(self) -> str:
        """Connection string of the `postgres` database."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.root,
                                check=False, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): "
                               f"{result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> None:
        # fsync off: the tests kill clients, not the machine, and it makes start-up and
        # commits fast on a busy CI box.
        options = (f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=50 -c shared_buffers=16MB")
        self._run("pg_ctl", "start", "-D", str(self.data), "-w", "-t", "30", "-o", options,
                  "-l", str(self.root / "server.log"))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `mode="immediate"` is the nearest thing to pulling the plug."""
        self._run("pg_ctl", "stop", "-D", str(self.data), "-w", "-m", mode)

    def create_database(self) -> str:
        """A new empty database; returns its connection string."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> str:
    """Connection string of a database no other test uses."""
    return postgres_server.create_database()
