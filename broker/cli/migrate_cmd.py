"""`handoff migrate`: move an embedded data directory onto Kafka.

Exit codes: 0 migrated (or already migrated); 1 the migration stopped part-way (run the
same command again to continue); 2 it will not start (target in use without --force,
broker still running, bad settings, embedded audit chain fails verification).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broker.audit.paths import signing_public_key_path
from broker.cli.audit_kafka import kafka_settings, settings_data_dir
from broker.cli.progress import progress_bars
from broker.errors import ConfigError, HandoffError, LogError
from broker.migrate import Migration, MigrationError, MigrationRefused

app = typer.Typer()


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command("migrate")
def migrate(
    data: Annotated[
        Path | None, typer.Option("--data", help="The embedded data directory to move "
                                  "(default: data_dir from the settings).")
    ] = None,
    kafka: Annotated[
        str | None, typer.Option("--kafka", help="Kafka bootstrap servers (host:port,…) "
                                 "to move to (default: the settings' kafka section).")
    ] = None,
    topic_prefix: Annotated[
        str | None, typer.Option("--topic-prefix", help="Topic prefix of the Kafka "
                                 "installation (default: kafka.topic_prefix, 'handoff.').")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML settings file (its kafka section "
                                  "holds security options too).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Copy even though the target already holds "
                           "records (they are kept; this directory's go after them).")
    ] = False,
) -> None:
    """Copy topics, consumer offsets, the idempotency index and the audit chain of an
    embedded data directory to Kafka, verify the audit log there and sign it.

    Stop the broker first. Interrupted? Run the same command again: it continues.
    Exit codes: 0 done, 1 stopped part-way (run again), 2 refused to start.
    """
    settings = kafka_settings(kafka, topic_prefix, config)
    if settings is None:
        raise _fail("name the Kafka cluster with --kafka, or use settings with "
                    "log.backend: kafka", 2)
    data_dir = data if data is not None else settings_data_dir(config)
    if not data_dir.is_dir():
        raise _fail(f"no data directory at {data_dir}", 2)
    from broker.log.kafka import KafkaEventLog

    try:
        target = KafkaEventLog.from_settings(settings, client_id="handoff-migrate")
    except ConfigError as exc:
        raise _fail(str(exc), 2) from exc
    except LogError as exc:
        raise _fail(f"cannot reach Kafka: {exc}", 1) from exc
    try:
        with progress_bars() as meter:
            report = Migration(data_dir, target, force=force, progress=typer.echo,
                               meter=meter).run()
    except MigrationRefused as exc:
        raise _fail(str(exc), 2) from exc
    except (MigrationError, HandoffError) as exc:
        raise _fail(f"{exc}\nthe migration stopped part-way; run the same command again "
                    "to continue", 1) from exc
    finally:
        target.close()
    if report.already_done:
        return
    copied = sum(report.copied.values())
    typer.echo(f"migrated {copied} records in {len(report.copied)} topics, "
               f"{sum(report.group_offsets.values())} committed offsets, "
               f"{report.accepted} accepted event ids, {report.audit_records} audit records "
               f"and {report.audit_checkpoints} checkpoints to Kafka at "
               f"{settings.bootstrap_servers} (prefix {settings.topic_prefix!r})")
    typer.echo(f"check it with: handoff audit verify --kafka {settings.bootstrap_servers} "
               f"--topic-prefix {settings.topic_prefix} --public-key PINNED.pub (the copy "
               f"of {signing_public_key_path(data_dir)} pinned at install; `handoff audit "
               f"public-key --data {data_dir}` prints it)")
