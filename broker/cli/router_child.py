"""The router process `handoff serve` starts and supervises (`broker.cli.router_supervisor`).

Run by the parent only, as `python -m broker.cli.router_child --status-fd N
--control-fd M`, with the settings as one JSON line on standard input; it writes its
health to descriptor N twice a second (b"1" routing and healthy, b"0" not) and answers
the parent's requests on socket M (`broker.cli.router_control`: metrics, policy reloads,
clerical linkage changes). It runs the `router` role until SIGTERM or SIGINT, then stops
as every `handoff serve` does: the last batch finishes and a final audit checkpoint is
signed. SIGHUP reloads the policy too.
When its standard input ends (the parent is gone) it ends at once (`watch_parent`).
Exit codes are those of `handoff serve`: 0 stopped, 1 the event log cannot be reached, 2
a configuration problem, 3 its metrics port is taken.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType

import typer
import uvicorn
from prometheus_client import generate_latest

from broker.api.app import create_app
from broker.bootstrap import Broker, build_broker
from broker.cli.errors import exit_on_config_error
from broker.cli.graceful import GracefulServer, ignore_while_stopping, stopping_on_sigterm
from broker.cli.heap import router_young, settle_heap
from broker.cli.router_control import Handler, JsonObject, serve_control
from broker.cli.serve_cmd import configure_logging, exit_if_port_taken
from broker.config import Settings, settings_from_json
from broker.errors import ConfigError
from broker.linking.forwarding import apply_clerical
from broker.linking.service import LinkageReadOnlyError
from broker.reloads import install_sighup, reload_keys_and_policy
from broker.roles import Roles, RouterAlreadyRunningError, RouterLock
from schemas.errors import HandoffError

log = logging.getLogger("handoff")
reload_asked = threading.Event()
RELOAD_ACTOR = "router_process"
"""The actor of this process's policy reloads in the audit log (a refusal is audited by
each process that refuses)."""

LOCK_WAIT_SECONDS = 15.0
"""How long a new router waits for the one before it (a parent killed and started again
at once) to finish and release the embedded log's router lock."""


def read_settings_line(fd: int = 0) -> str:
    """The first line on `fd`, read without buffering past it."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data.decode()


def watch_parent(fd: int) -> None:
    """Block until `fd` ends (the parent's end of the pipe closed: it is gone, however
    it ended), then end this process at once, as if killed with its parent.

    Not a clean stop: a parent that went without stopping this process was killed, and
    the installation's processes then end together, as one process killed with
    `kill -9` does (nothing acknowledged is lost; the last batch is routed again). On
    Kafka a clean stop would leave the consumer group, and some brokers (Tansu) hold the
    next member's join for long after a leave, while a member that vanishes is removed
    after the session timeout (6 s)."""
    while os.read(fd, 4096):
        pass
    log.warning("the serving process is gone: the router process ends with it")
    logging.shutdown()
    os._exit(1)


def wait_for_router_lock(settings: Settings, seconds: float = LOCK_WAIT_SECONDS) -> None:
    """Wait until no other process holds the embedded log's router lock (its previous
    holder may still be signing its last checkpoint), up to `seconds`."""
    if settings.log.backend != "embedded":
        return
    deadline = time.monotonic() + seconds
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            RouterLock(settings.data_dir).release()
            return
        except RouterAlreadyRunningError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def report_status(fd: int | None, healthy: bool) -> None:
    """Tell the parent whether this process routes and its workers are healthy."""
    if fd is None:
        return
    # The parent may read slowly, or be gone (then standard input ends too).
    with contextlib.suppress(BlockingIOError, BrokenPipeError):
        os.write(fd, b"1" if healthy else b"0")


def control_handlers(broker: Broker) -> dict[str, Handler]:
    """What the parent may ask (`broker.cli.router_control`)."""

    def metrics(request: object) -> JsonObject:
        return {"text": generate_latest(broker.metrics.registry).decode()}

    def reload(request: object) -> JsonObject:
        outcome = reload_keys_and_policy(broker.api.reloader, broker.api.keyring,
                                         RELOAD_ACTOR)
        return {"applied": outcome.applied, "version": outcome.version}

    def linkage(request: object) -> JsonObject:
        service = broker.api.linkage
        if service is None or not isinstance(request, dict):
            raise LinkageReadOnlyError("this router process links no persons")
        return apply_clerical(service, request)

    return {"metrics": metrics, "reload": reload, "linkage": linkage}


def run(settings: Settings, stop: threading.Event, status_fd: int | None = None,
        control: socket.socket | None = None) -> None:
    """Route until `stop` is set; serve health and metrics on `router.metrics_port` if
    set; report health on `status_fd` twice a second; answer the parent on `control`."""
    port = settings.router.metrics_port
    if port is not None:
        exit_if_port_taken(settings.api.host, port)
    wait_for_router_lock(settings)
    broker = build_broker(settings, Roles.parse("router"))
    server = thread = None
    try:
        broker.start()
        # Reloads come from the parent, which passes on its own (SIGHUP, the admin API).
        install_sighup(broker.api.reloader, broker.api.keyring, actor=RELOAD_ACTOR)
        if reload_asked.is_set():
            os.kill(os.getpid(), signal.SIGHUP)  # asked while starting: read it again
        if control is not None:
            threading.Thread(target=serve_control, args=(control, control_handlers(broker)),
                             name="handoff-router-control", daemon=True).start()
        if port is not None:
            server = GracefulServer(uvicorn.Config(
                create_app(broker.api), host=settings.api.host, port=port,
                log_level="warning", access_log=False, lifespan="on"))
            thread = threading.Thread(target=server.run, name="handoff-router-http",
                                      daemon=True)
            thread.start()
        settle_heap(router_young(settings.router.batch_size))
        log.info("router process %d routing (%s log, data in %s)%s", os.getpid(),
                 settings.log.backend, settings.data_dir,
                 f", health and metrics on port {port}" if port else "")
        while not stop.is_set():
            report_status(status_fd, all(broker.workers.health().values()))
            stop.wait(0.5)
    finally:
        with stopping_on_sigterm(ignore_while_stopping):
            if server is not None and thread is not None:
                server.should_exit = True
                thread.join(10)
            broker.stop()


def descriptors(args: list[str]) -> tuple[int | None, socket.socket | None]:
    """The pipe to report health on (`--status-fd N`, made non-blocking) and the socket
    to answer the parent on (`--control-fd M`)."""
    given = dict(zip(args[::2], args[1::2], strict=False))
    status = given.get("--status-fd")
    if status is not None:
        os.set_blocking(int(status), False)
    control = given.get("--control-fd")
    return (int(status) if status is not None else None,
            socket.socket(fileno=int(control)) if control is not None else None)


def main() -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # A policy reload asked for before the broker is built: done once it is.
    signal.signal(signal.SIGHUP, lambda signum, frame: reload_asked.set())
    configure_logging()
    line = read_settings_line()
    if not line.strip():
        sys.exit(0)  # the parent was gone before it said anything
    threading.Thread(target=watch_parent, args=(0,), name="handoff-parent-watch",
                     daemon=True).start()
    try:
        with exit_on_config_error():
            try:
                run(settings_from_json(line), stop, *descriptors(sys.argv[1:]))
            except HandoffError as exc:
                if not exc.retriable or isinstance(exc, ConfigError):
                    raise
                typer.echo(f"handoff: router process: {exc}", err=True)
                sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
