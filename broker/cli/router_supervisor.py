"""The router in a process of its own, started and supervised by `handoff serve`.

Routing shares nothing with HTTP but the data, so on one machine `handoff serve` keeps
the API and delivery and runs the router in a child process (`broker.cli.router_child`),
where it never waits for the interpreter lock the HTTP server holds. `RouterProcess` is
that child seen from the parent: a `Worker` named `router`, healthy while the child runs
and reports (on a second pipe, twice a second) that it routes and its workers are
healthy; so the parent's `/readyz` is 503 while the router is down or still starting.

- The child gets the settings in force, exactly (command line, environment and config
  file already merged, secrets included), as one JSON line on its standard input; the
  pipe then stays open, and its end (EOF) tells the child its parent is gone, however
  the parent ended, `kill -9` included: the child then ends at once. A pipe rather
  than `PR_SET_PDEATHSIG`: that signal follows the thread that started the child, not
  the process (the restarts start it from the supervising thread), it needs a
  `preexec_fn` (unsafe in a process with threads) or a race-prone call in the child,
  and it is Linux only; the kernel closes a dead process's pipes, every time, on every
  POSIX system (the descriptors are close-on-exec, so no other child holds them).
- A policy reload of the parent (SIGHUP, `POST /v1/admin/policy:reload`, an installed
  bundle) is passed on to the child over a socket pair (`broker.cli.router_control`),
  and the parent's reload answers once the child decides with the new bundle (or after
  `RELOAD_WAIT_SECONDS`). The same channel brings the child's metrics to the parent's
  `/metrics` and carries clerical record-linkage changes to the child, the one writer
  of the person index.
- The child runs in a process group of its own, so Ctrl-C in a terminal reaches the
  parent alone, which stops the child itself (SIGTERM, then SIGKILL after
  `STOP_SECONDS`). Its logs go to the parent's standard output and error.
- A child that exits unasked is started again after a delay that doubles from
  `FIRST_DELAY` to `LONGEST_DELAY`, back to the first once a child has run for
  `STEADY_SECONDS`. Exit code 2 (a configuration problem) or 3 (its metrics port is
  taken) would only fail again: the parent then stops, and `handoff serve` exits 2.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

from broker.cli.router_control import ControlClient, JsonObject, RouterUnreachableError
from broker.config import Settings, settings_to_json

log = logging.getLogger("handoff")

FIRST_DELAY = 0.5
LONGEST_DELAY = 30.0
STEADY_SECONDS = 60.0
STOP_SECONDS = 30.0
CONFIG_PROBLEM = (2, 3)
"""Exit codes of a child that would fail the same way again."""
CHILD_COMMAND = (sys.executable, "-m", "broker.cli.router_child")
RELOAD_WAIT_SECONDS = 30.0
"""Longest a reload waits for the router process to decide with the new bundle."""
METRICS_WAIT_SECONDS = 2.0
LINKAGE_WAIT_SECONDS = 30.0


@dataclass
class Backoff:
    """Delay before the next restart: doubling, back to the first after a steady run."""

    first: float = FIRST_DELAY
    longest: float = LONGEST_DELAY
    steady: float = STEADY_SECONDS
    _next: float = FIRST_DELAY

    def __post_init__(self) -> None:
        self._next = self.first

    def after(self, ran_seconds: float) -> float:
        """The delay before restarting a child that ran `ran_seconds`."""
        if ran_seconds >= self.steady:
            self._next = self.first
        delay = self._next
        self._next = min(self.longest, delay * 2)
        return delay


def describe_exit(code: int) -> str:
    """`exit code 1`, or `signal SIGKILL` for a child a signal ended."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class RouterProcess:
    """The supervised router child of `handoff serve` (see the module's text).

    `on_fatal` is called (from the supervising thread) when the child stopped on a
    configuration problem; `failed_with` then holds its exit code.
    """

    def __init__(self, settings: Settings, *, on_fatal: Callable[[], None],
                 command: Sequence[str] = CHILD_COMMAND, backoff: Backoff | None = None,
                 stop_seconds: float = STOP_SECONDS) -> None:
        self._settings_line = (settings_to_json(settings) + "\n").encode()
        self._on_fatal = on_fatal
        self._command = tuple(command)
        self._backoff = backoff or Backoff()
        self._stop_seconds = stop_seconds
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._thread: threading.Thread | None = None
        self._control = ControlClient()
        self.failed_with: int | None = None
        self.restarts = 0

    @property
    def name(self) -> str:
        return "router"

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None else None

    def start(self) -> None:
        self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="handoff-router-supervisor",
                                        daemon=True)
        self._thread.start()

    def begin_stop(self) -> None:
        """No more restarts from now on (the parent is stopping)."""
        self._stopping.set()

    def stop(self) -> None:
        """SIGTERM to the child, which finishes its batch and signs a final checkpoint;
        SIGKILL if it has not exited within the stop timeout."""
        with self._lock:
            self._stopping.set()
            child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(self._stop_seconds)
            except subprocess.TimeoutExpired:
                log.warning("the router process did not stop within %.0f s: killing it",
                            self._stop_seconds)
                child.kill()
                child.wait()
        if self._thread is not None:
            self._thread.join(5)
        self._control.attach(None)
        if child is not None:
            _close(child.stdin)

    def reload(self) -> None:
        """Ask the child to read the policy folder (and schema folder) again, and wait
        until it decides with what it read (up to `RELOAD_WAIT_SECONDS`). A child that is
        not running reads them when it starts."""
        try:
            answer = self.request({"op": "reload"}, RELOAD_WAIT_SECONDS)
        except RouterUnreachableError as exc:
            log.warning("policy reload: %s; it reads the policy folder when it starts",
                        exc)
            return
        if "error" in answer:
            log.warning("policy reload: the router process failed to reload (%s)",
                        answer.get("error"))

    def metrics_text(self) -> str | None:
        """The child's Prometheus exposition, or None when it is not up or does not
        answer."""
        if not self.healthy():
            return None
        try:
            answer = self.request({"op": "metrics"}, METRICS_WAIT_SECONDS)
        except RouterUnreachableError:
            return None
        text = answer.get("text")
        return text if isinstance(text, str) else None

    def request(self, message: JsonObject, timeout: float) -> JsonObject:
        """Send a request to the running child and return its answer
        (`broker.cli.router_control`); `RouterUnreachableError` when none answers."""
        return self._control.request(message, timeout)

    def healthy(self) -> bool:
        """The child runs and, in its last report (every half second), it was routing
        and each of its workers was healthy."""
        child = self._child
        return child is not None and child.poll() is None and self._ready

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            status_read, status_write = os.pipe()
            control, child_control = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                child = subprocess.Popen(  # noqa: S603 (our own command)
                    (*self._command, "--status-fd", str(status_write),
                     "--control-fd", str(child_control.fileno())),
                    stdin=subprocess.PIPE, process_group=0,
                    pass_fds=(status_write, child_control.fileno()))
            except BaseException:
                os.close(status_read)
                control.close()
                raise
            finally:
                os.close(status_write)
                child_control.close()
            self._control.attach(control)
            self._ready = False
            threading.Thread(target=self._read_status, args=(status_read,), daemon=True,
                             name="handoff-router-status").start()
            assert child.stdin is not None
            child.stdin.write(self._settings_line)
            child.stdin.flush()  # and keep it open: its end tells the child we are gone
            self._child = child
        log.info("router process started (pid %d)", child.pid)

    def _read_status(self, fd: int) -> None:
        """Follow the child's health reports (b"1" healthy, b"0" not) until it exits."""
        try:
            while report := os.read(fd, 64):
                self._ready = report.endswith(b"1")
        finally:
            self._ready = False
            os.close(fd)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            child = self._child
            if child is None:
                return
            started = time.monotonic()
            code = child.wait()
            ran = time.monotonic() - started
            _close(child.stdin)
            if self._stopping.is_set():
                return
            if code in CONFIG_PROBLEM:
                log.error("the router process stopped on a configuration problem (%s); "
                          "stopping", describe_exit(code))
                self.failed_with = code
                self._stopping.set()
                self._on_fatal()
                return
            delay = self._backoff.after(ran)
            log.warning("the router process ended with %s after %.1f s; starting it again "
                        "in %.1f s", describe_exit(code), ran, delay)
            if self._stopping.wait(delay):
                return
            self.restarts += 1
            self._spawn()


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        with contextlib.suppress(OSError):
            stream.close()
