"""`handoff serve`: the API, router and delivery, or some of them (`--role`, see
`broker.roles`). With `--router-process`, a process that serves clients and routes runs
the router in a supervised process of its own (`broker.cli.router_supervisor`)."""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path

import typer
import uvicorn

from broker.api.app import create_app
from broker.auth.mtls import uvicorn_tls_options
from broker.bootstrap import build_broker
from broker.cli.errors import exit_on_config_error
from broker.cli.graceful import GracefulServer, ignore_while_stopping, stopping_on_sigterm
from broker.cli.heap import YOUNG, router_young, settle_heap
from broker.cli.router_supervisor import RouterProcess
from broker.config import Settings, load_settings
from broker.errors import ConfigError
from broker.linking.forwarding import forwarding
from broker.reloads import install_sighup
from broker.roles import Roles
from schemas.errors import HandoffError

app = typer.Typer()


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # kafka-python narrates every connection and metadata refresh at INFO.
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))


PORT_IN_USE = 3
"""Exit code when the API's port is taken (uvicorn's own code for a failed start)."""


def exit_if_port_taken(host: str, port: int) -> None:
    """Say so in one line and exit 3 when another program listens on `host:port`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            typer.echo(f"handoff: port {port} on {host} is already in use; stop what "
                       "listens there or give --port", err=True)
            raise typer.Exit(PORT_IN_USE) from None


class RouterProcessFailedError(ConfigError):
    """The supervised router process stopped on a configuration problem."""


def serve_settings(settings: Settings, ready_message: bool = True,
                   roles: Roles | None = None) -> None:
    """Build and run a broker (every role unless `roles` says otherwise) until
    interrupted (Ctrl-C or SIGTERM). With the router among roles that serve clients, the
    router runs in a supervised child process if `settings.router_process`."""
    api = settings.api
    tls = uvicorn_tls_options(api.tls_cert, api.tls_key, api.tls_client_ca)
    roles = roles or Roles.all()
    child = server = None

    def stop_serving() -> None:  # the router process failed on its configuration
        if server is not None:
            server.should_exit = True

    if roles.router and roles.serves_clients and settings.router_process:
        child = RouterProcess(settings, on_fatal=stop_serving)
        roles = roles.without_router()
    broker = build_broker(settings, roles, supervised=(child,) if child else ())
    server = GracefulServer(uvicorn.Config(
        create_app(broker.api), host=api.host, port=api.port,
        log_level="warning", access_log=False, lifespan="on",
        **tls,
    ))
    if child is not None:
        server.on_exit = child.begin_stop
        # What needs the process that routes: its reloads (answered once it runs the
        # new bundle), its metrics, clerical linkage changes (it writes the index).
        broker.api.reloader.followers.append(child.reload)
        broker.metrics.registry.children.append(child.metrics_text)
        linkage = broker.api.linkage
        if linkage is not None and not linkage.writable:
            linkage.forward_clerical_changes(forwarding(child.request))
    try:
        broker.start()
        install_sighup(broker.api.reloader, broker.api.keyring)
        # A process that only routes (`--role router`) gathers a step's values as the
        # router process does; one that also serves keeps its loop's pauses short.
        settle_heap(router_young(settings.router.batch_size)
                    if roles.router and not roles.serves_clients else YOUNG)
        if ready_message:
            logging.getLogger("handoff").info(
                "serving role %s on %s://%s:%d (OpenAPI docs at /docs), %s log, data in %s%s",
                broker.roles, "https" if tls else "http", api.host, api.port,
                settings.log.backend, settings.data_dir,
                f"; the router in process {child.pid}" if child else "")
        server.run()
    finally:
        with stopping_on_sigterm(ignore_while_stopping):
            broker.stop()
    if child is not None and child.failed_with is not None:
        raise RouterProcessFailedError(
            f"the router process stopped on a configuration problem ({child.failed_with}: "
            "see its message above), so handoff serve stopped too")


@app.command("serve")
def serve(
    policy: Path | None = typer.Option(None, help="policy bundle folder"),
    schemas: Path | None = typer.Option(
        None, help="folder of the state's own event schemas (<type>.avsc), in addition to "
                   "the shipped ones; read again at every policy reload"),
    data: Path | None = typer.Option(None, help="data directory"),
    host: str | None = typer.Option(None, help="interface to listen on"),
    port: int | None = typer.Option(None, help="TCP port"),
    keys: Path | None = typer.Option(None, help="API keys file (YAML, hashed)"),
    config: Path | None = typer.Option(None, help="YAML settings file"),
    tls_cert: Path | None = typer.Option(None, help="serve HTTPS with this certificate (PEM)"),
    tls_key: Path | None = typer.Option(None, help="the certificate's private key (PEM)"),
    tls_client_ca: Path | None = typer.Option(
        None, help="require client certificates signed by this CA bundle (mutual TLS)"),
    role: str = typer.Option(
        "all", envvar="HANDOFF_ROLE",
        help="what this process runs: all, or any of api, delivery, router separated by "
             "commas (several processes share the work; see docs/operations.md)"),
    router_process: bool | None = typer.Option(
        None, "--router-process/--single-process", show_default=False,
        help="run the router in a process of its own that this command starts and "
             "supervises (the default), or everything in this one (also "
             "HANDOFF_ROUTER_PROCESS=0; see docs/operations.md)"),
) -> None:
    """Run the API, router and delivery (or the roles given) until stopped.

    Exit codes: 2 for a configuration problem (a bad setting, a Kafka topic of the wrong
    shape, a second router on the embedded log), 1 when the event log cannot be reached,
    3 when the port is already in use.
    """
    configure_logging()
    with exit_on_config_error():
        roles = Roles.parse(role)
        settings = load_settings(config, policy_dir=policy, data_dir=data, keys_file=keys,
                                 schema_dir=schemas, router_process=router_process)
        given = {"host": host, "port": port, "tls_cert": tls_cert, "tls_key": tls_key,
                 "tls_client_ca": tls_client_ca}
        api = settings.api.model_copy(update={k: v for k, v in given.items() if v})
        settings = settings.model_copy(update={"api": api})
        exit_if_port_taken(api.host, api.port)
        try:
            serve_settings(settings, roles=roles)
        except HandoffError as exc:
            if not exc.retriable:
                raise
            # Worth another try later: say so in one line and let a supervisor restart.
            typer.echo(f"handoff: {exc}", err=True)
            raise typer.Exit(1) from None
