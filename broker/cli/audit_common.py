"""What the `handoff audit` commands share: exit codes, errors, options, opening the
embedded store.

Exit codes: 0 success; 1 the log failed verification (or cannot be read); 2 usage
errors (missing data directory, audit store or key file, bad arguments).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from broker.audit.errors import AuditStoreNotFoundError
from broker.audit.paths import audit_db_path
from broker.audit.sqlite_store import SqliteAuditStore
from broker.errors import AuditError

EXIT_FAILED = 1
EXIT_USAGE = 2

KafkaOption = Annotated[
    str | None,
    typer.Option("--kafka", help="Kafka bootstrap servers (host:port,…): use the audit log "
                 "kept in Kafka instead of a data directory."),
]
TopicPrefixOption = Annotated[
    str | None,
    typer.Option("--topic-prefix", help="The installation's Kafka topic prefix "
                 "(default: kafka.topic_prefix from the settings, 'handoff.')."),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="YAML settings file; with log.backend: kafka its kafka "
                 "section says where the audit log is."),
]


def usage_error(message: str) -> NoReturn:
    """Say what is wrong with how the command was called; exit 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def failure(message: str) -> NoReturn:
    """Say why the command could not do its work; exit 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_FAILED)


def open_store(data: Path) -> SqliteAuditStore:
    """The embedded audit store in `data`; exits 2 when there is none."""
    if not data.is_dir():
        usage_error(f"no data directory at {data}")
    try:
        return SqliteAuditStore(audit_db_path(data), create=False)
    except AuditStoreNotFoundError as exc:
        usage_error(str(exc))
    except AuditError as exc:
        failure(str(exc))
