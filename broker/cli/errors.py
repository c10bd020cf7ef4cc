"""How the command line reports a bad configuration: one line, then exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from policy import BundleError
from schemas.errors import HandoffError


@contextmanager
def exit_on_config_error() -> Iterator[None]:
    try:
        yield
    except BundleError as exc:
        for problem in exc.problems:
            typer.echo(f"handoff: {problem}", err=True)
        raise typer.Exit(2) from None
    except HandoffError as exc:
        if exc.retriable:
            raise
        typer.echo(f"handoff: {exc}", err=True)
        raise typer.Exit(2) from None
