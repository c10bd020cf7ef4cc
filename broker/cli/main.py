"""The `handoff` command. Each command group lives in its own module."""

from __future__ import annotations

import typer

from broker.cli import (
    audit_cmd,
    connect_cmd,
    demo_cmd,
    encryption_cmd,
    keys_cmd,
    linkage_cmd,
    migrate_cmd,
    policy_cmd,
    report_cmd,
    serve_cmd,
)

app = typer.Typer(
    name="handoff",
    help="Handoff: consent-aware, audited event exchange between human-services agencies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(policy_cmd.app, name="policy")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(encryption_cmd.app, name="encryption")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(connect_cmd.app, name="connect")
app.add_typer(linkage_cmd.app, name="linkage")
app.add_typer(report_cmd.app, name="report")
for sub_app in (serve_cmd.app, demo_cmd.app, migrate_cmd.app):
    app.registered_commands.extend(sub_app.registered_commands)


if __name__ == "__main__":  # pragma: no cover
    app()
