"""The `handoff` command. Each command group lives in its own module."""

from __future__ import annotations

import typer

from broker.cli import audit_cmd, policy_cmd

app = typer.Typer(
    name="handoff",
    help="Handoff: consent-aware, audited event exchange between human-services agencies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(policy_cmd.app, name="policy")
app.add_typer(audit_cmd.app, name="audit")


if __name__ == "__main__":  # pragma: no cover
    app()
