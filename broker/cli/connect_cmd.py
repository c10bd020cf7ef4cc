"""`handoff connect`: run connectors, check a connectors file, scaffold a new connector.

Exit codes: 0 done; 1 a connector failed for good (`run --until-idle`); 2 a configuration
problem (bad connectors file, unknown connector type, unusable name).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from broker.bootstrap import Broker, build_broker
from broker.cli.errors import exit_on_config_error
from broker.cli.graceful import ignore_while_stopping, stopping_on_sigterm
from broker.config import Settings, load_settings
from broker.roles import Roles, RouterAlreadyRunningError
from connectors.base import ConnectorConfig
from connectors.config_file import load_connectors_file
from connectors.registry import available_types, connector_class
from connectors.scaffold import scaffold

app = typer.Typer(
    no_args_is_help=True,
    help="Run and build connectors to agency systems. Exit codes: 0 done, 1 a connector "
    "failed, 2 configuration problem.",
)

log = logging.getLogger("handoff")


@app.command("run")
def run(
    connectors_file: Annotated[Path, typer.Argument(help="YAML file listing connectors.")],
    policy: Annotated[Path | None, typer.Option(help="policy bundle folder")] = None,
    data: Annotated[Path | None, typer.Option(help="data directory")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file")] = None,
    route: Annotated[bool | None, typer.Option(
        "--route/--no-route",
        help="also route events to subscriptions (default: when no other process "
             "routes this data directory)")] = None,
    until_idle: Annotated[bool, typer.Option(
        "--until-idle", help="exit once every connector has nothing more to do")] = False,
) -> None:
    """Run the connectors in CONNECTORS_FILE against a broker's data until stopped."""
    from broker.cli.serve_cmd import configure_logging

    configure_logging()
    with exit_on_config_error():
        configs = load_connectors_file(connectors_file)
        # The connectors named on the command line, not those of the settings' file.
        settings = load_settings(config, policy_dir=policy, data_dir=data).model_copy(
            update={"connectors_file": None})
        # With --until-idle this thread routes, so it knows when routing is done.
        broker = _broker(settings, route, configs, router_thread=not until_idle)
    connectors = broker.connectors
    assert connectors is not None
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    broker.start()
    log.info("running %d connector(s): %s", len(configs), ", ".join(c.name for c in configs))
    failed = False
    try:
        while not stop.is_set():
            if not until_idle:
                stop.wait(0.5)
                continue
            before = connectors.settled()
            routed = broker.router.step() if broker.router is not None else stop.wait(0.2)
            if before is not None and not routed and connectors.settled() == before:
                break
    finally:
        with stopping_on_sigterm(ignore_while_stopping):
            broker.stop()
        for status in connectors.statuses():
            failed = failed or status["state"] == "failed"
            records = status["records"]
            typer.echo(f"{status['name']}: {status['state']}, {records['in']} in, "
                       f"{records['out']} out, {records['duplicate']} duplicate, "
                       f"{records['failed']} failed"
                       + (f"; last error: {status['last_error']}"
                          if status["last_error"] else ""), err=True)
    if failed:
        raise typer.Exit(1)


def _broker(settings: Settings, route: bool | None, configs: list[ConnectorConfig], *,
            router_thread: bool) -> Broker:
    def build(roles: str) -> Broker:
        return build_broker(settings, Roles.parse(roles), connectors=configs,
                            router_thread=router_thread)

    if route is False:
        return build("api")
    try:
        return build("api,router")
    except RouterAlreadyRunningError:
        if route:
            raise
        log.info("another process routes this data directory; publishing only")
        return build("api")


@app.command("check")
def check(
    connectors_file: Annotated[Path, typer.Argument(help="YAML file listing connectors.")],
) -> None:
    """Validate a connectors file without running anything."""
    with exit_on_config_error():
        configs = load_connectors_file(connectors_file)
    for config in configs:
        typer.echo(f"{config.name}: {config.type} ok")


@app.command("types")
def types() -> None:
    """List the connector types this installation can run."""
    with exit_on_config_error():
        for name in available_types():
            cls = connector_class(name)
            doc = (cls.__doc__ or "").strip().splitlines()
            typer.echo(f"{name}\t{cls.kind}\t{doc[0] if doc else ''}")


@app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="connector name, like acme-cms")],
    directory: Annotated[Path, typer.Option(
        "--dir", help="folder to create the package in")] = Path("."),
) -> None:
    """Scaffold a connector package with a passing test."""
    with exit_on_config_error():
        target = scaffold(name, directory)
    typer.echo(f"created {target}")
    typer.echo(f"next: cd {target} && python3 -m pip install -e '.[test]' && "
               "python3 -m pytest -q")
