"""A real PostgreSQL server for tests: the system's, or the one pip installs (pgserver).

`PostgresServer` runs `initdb` into a fresh temporary folder and `postgres` on a free
loopback port, with its unix socket in that folder. The server is a child of the test
process and dies with it, so a killed test run leaves no server behind. PostgreSQL
refuses to run as root, so when the tests run as root the folder is handed to the
`postgres` system user (or `nobody`) and the server runs as that user. Clients connect
over TCP to 127.0.0.1 as the trust-authenticated superuser `handoff`.

The `postgres_server` session fixture shares one server across the run; each test takes
a database of its own from `postgres_database`:

    from tests.postgres_server import postgres_database, postgres_server  # noqa: F401

    def test_something(postgres_database):
        with psycopg.connect(postgres_database) as conn: ...

Binaries come from `HANDOFF_PG_BIN` (a folder holding initdb and postgres), else from
the system's PostgreSQL (`/usr/lib/postgresql/*/bin`, newest first; `apt-get install
postgresql`), else from the `pgserver` package the test extra installs. Setting
`HANDOFF_TESTS_POSTGRES=pgserver` (or `system`) takes only that one.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kafka_broker import die_with_parent, free_port
from tests.waiting import eventually

SUPERUSER = "handoff"
SYSTEM_ROOT = Path("/usr/lib/postgresql")
CHOICE = "HANDOFF_TESTS_POSTGRES"


def _system_bins() -> list[Path]:
    if not SYSTEM_ROOT.is_dir():
        return []
    versions = sorted((p for p in SYSTEM_ROOT.iterdir() if p.name.isdigit()),
                      key=lambda p: int(p.name), reverse=True)
    return [v / "bin" for v in versions]


def _pgserver_bin() -> list[Path]:
    # Found without importing the package (importing it sets up things we do not use).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"]


def postgres_bin() -> Path:
    """The folder holding initdb and postgres; raise with an install hint if there is none."""
    wanted = os.environ.get("HANDOFF_PG_BIN")
    choice = os.environ.get(CHOICE, "")
    if choice not in ("", "system", "pgserver"):
        raise RuntimeError(f"{CHOICE} must be 'system' or 'pgserver', not {choice!r}")
    candidates = [Path(wanted)] if wanted else []
    if choice != "pgserver":
        candidates += _system_bins()
    if choice != "system":
        candidates += _pgserver_bin()
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise RuntimeError("the PostgreSQL tests need a server: python3 -m pip install pgserver "
                       "(the test extra brings it) or apt-get install -y postgresql, or set "
                       "HANDOFF_PG_BIN to the folder holding initdb and postgres")


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


def _as(user: str | None) -> dict[str, Any]:
    """`subprocess` options that run a child as `user` (when given) and tie its life to
    ours (subprocess changes the user before it calls `preexec_fn`)."""
    options: dict[str, Any] = {"preexec_fn": die_with_parent}
    if user is not None:
        entry = pwd.getpwnam(user)
        options.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    return options


def _reachable(binary: Path, user: str | None) -> bool:
    """Whether `user` may run `binary` (a pip install under root's home may be closed)."""
    if user is None:
        return True
    test = shutil.which("test") or "/usr/bin/test"
    return subprocess.run([test, "-x", str(binary)], check=False, timeout=30,
                          **_as(user)).returncode == 0


_copies: dict[Path, Path] = {}


def _copy_for(bin_dir: Path) -> Path:
    """`bin_dir`'s installation copied where every user can run it, once per run.

    pgserver's binaries find their libraries at `$ORIGIN/../../../pgserver.libs`, so the
    copy keeps the package's layout."""
    if bin_dir in _copies:
        return _copies[bin_dir]
    install = bin_dir.parent
    root = Path(tempfile.mkdtemp(prefix="handoff-pgbin-"))
    atexit.register(shutil.rmtree, root, True)
    os.chmod(root, 0o755)
    package = root / install.parent.name / install.name
    for part in ("bin", "lib", "share"):
        if (install / part).is_dir():
            shutil.copytree(install / part, package / part)
    libs = install.parent.parent / f"{install.parent.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, root / libs.name)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            (Path(folder) / name).chmod(0o755)
        for name in files:
            path = Path(folder) / name
            path.chmod(0o755 if path.stat().st_mode & 0o100 else 0o644)
    _copies[bin_dir] = package / "bin"
    return _copies[bin_dir]


class PostgresServer:
    """One PostgreSQL server in a temporary folder, for as long as the object lives."""

    def __init__(self) -> None:
        self.user = _server_user()
        self.bin = postgres_bin()
        if not _reachable(self.bin / "initdb", self.user):
            self.bin = _copy_for(self.bin)
        # Not under pytest's tmp_path: its parents are private to root, and the server
        # user must be able to reach its data folder.
        self.root = Path(tempfile.mkdtemp(prefix="handoff-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        result = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, cwd=self.root, check=False, timeout=120,
            **_as(self.user))
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}): "
                               f"{result.stderr.strip() or result.stdout.strip()}")
        self.start()

    @property
    def dsn(self) -> str:
        """Connection string of the `postgres` database."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        import psycopg

        # fsync off: the tests kill clients, not the machine, and it makes start-up and
        # commits fast on a busy CI box.
        log_path = self.root / "server.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-k", str(self.socket_dir), "-c", "listen_addresses=127.0.0.1",
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=50",
                 "-c", "shared_buffers=16MB"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.root, **_as(self.user))
        process = self._process

        def accepts_connections() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited ({process.returncode}):\n"
                                   f"{log_path.read_text(errors='replace')}")
            with psycopg.connect(self.dsn, connect_timeout=2):
                return True

        eventually(accepts_connections, timeout=60, interval=0.1,
                   ignoring=(psycopg.OperationalError,),
                   message=lambda: f"PostgreSQL did not start:\n"
                                   f"{log_path.read_text(errors='replace')}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `mode="immediate"` is the nearest thing to pulling the plug."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        signals = {"smart": signal.SIGTERM, "fast": signal.SIGINT,
                   "immediate": signal.SIGQUIT}
        process.send_signal(signals[mode])
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def create_database(self) -> str:
        """A new empty database; returns its connection string."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    def close(self) -> None:
        with contextlib.suppress(OSError):
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
