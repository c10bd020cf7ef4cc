"""`handoff encryption`: create a key-encryption key, rotate it, show the data keys.

Exit codes: 0 success; 2 configuration problem (missing or wrong KEK, unreadable file).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from broker.bootstrap import open_event_log
from broker.cli.errors import exit_on_config_error
from broker.config import Settings, load_settings
from broker.crypto import (
    DataKeyEntry,
    DataKeyring,
    KeyEncryptionKey,
    LogKeyStore,
    load_kek,
    write_new_kek,
)
from broker.crypto.at_rest import kek_from_settings
from broker.crypto.errors import KekError
from broker.log.port import EventLog

app = typer.Typer(
    no_args_is_help=True,
    help="Encryption at rest: key-encryption keys and data keys. Exit codes: 0 ok, "
    "2 configuration problem.",
)

DataOption = Annotated[Path | None, typer.Option("--data", help="The broker's data directory.")]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML settings file.")]


def _settings(config: Path | None, data: Path | None) -> Settings:
    return load_settings(config, data_dir=data)


def _plain_log(settings: Settings) -> EventLog:
    # The key store lives in the log unencrypted (its entries are wrapped already).
    encryption = settings.encryption.model_copy(update={"enabled": False})
    return open_event_log(settings.model_copy(update={"encryption": encryption}))


@app.command("new-kek")
def new_kek(
    out: Annotated[Path, typer.Option("--out", help="File to create (mode 0600).")],
) -> None:
    """Create a random key-encryption key in a new file and print its id (never the key)."""
    with exit_on_config_error():
        kek = write_new_kek(out)
    typer.echo(f"created {out} holding {kek.kek_id}; point encryption.kek_file at it and "
               "keep a copy somewhere the broker's disk is not")


@app.command("rotate-kek")
def rotate_kek(
    new_kek_file: Annotated[Path, typer.Option("--new-kek-file",
                                               help="The new key-encryption key.")],
    kek_file: Annotated[Path | None, typer.Option(
        "--kek-file", help="The current KEK (default: encryption.kek_file / kek_env).")] = None,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Re-wrap every data key under a new KEK. Records are not rewritten.

    Stop the broker first (or, for a rotation without downtime, start every process with
    the new KEK as encryption.kek_file and the old one as encryption.previous_kek_file:
    each re-wraps at start). Afterwards the old KEK is no longer needed.
    """
    with exit_on_config_error():
        settings = _settings(config, data)
        new = load_kek(new_kek_file, None, {}, what="--new-kek-file")
        old: KeyEncryptionKey | None
        if kek_file is not None:
            old = load_kek(kek_file, None, {}, what="--kek-file")
        else:
            old, _ = kek_from_settings(settings.encryption, os.environ)
        if old is None or new is None:
            raise KekError("give the current KEK with --kek-file or in settings")
        event_log = _plain_log(settings)
        try:
            # Keys may already be under the new KEK (a rotation interrupted half-way).
            keyring = DataKeyring(LogKeyStore(event_log), new, retired=[old])
            moved = keyring.rewrap(new)
        finally:
            event_log.close()
    typer.echo(f"re-wrapped {moved} data keys from {old.kek_id} to {new.kek_id}; set "
               f"encryption.kek_file to {new_kek_file} and start the broker. The old KEK is "
               "no longer needed.")


@app.command("status")
def status(data: DataOption = None, config: ConfigOption = None) -> None:
    """List data keys per topic: live, shredded, oldest period and wrapping KEK."""
    with exit_on_config_error():
        settings = _settings(config, data)
        event_log = _plain_log(settings)
        try:
            latest: dict[str, DataKeyEntry] = {}
            for entry in LogKeyStore(event_log).changes():
                previous = latest.get(entry.key_id)
                if previous is None or not previous.shredded:
                    latest[entry.key_id] = entry
        finally:
            event_log.close()
    if not latest:
        typer.echo("no data keys (encryption is off, or nothing was appended yet)")
        return
    by_topic: dict[str, list[DataKeyEntry]] = {}
    for entry in latest.values():
        by_topic.setdefault(entry.topic, []).append(entry)
    typer.echo(f"{'topic':<32} {'live':>5} {'shredded':>8}  oldest live period  wrapped by")
    for topic, entries in sorted(by_topic.items()):
        live = [e for e in entries if not e.shredded]
        oldest = min((e.period_start_ms for e in live), default=None)
        keks = ",".join(sorted({e.kek_id or "?" for e in live})) or "-"
        typer.echo(f"{topic:<32} {len(live):>5} {len(entries) - len(live):>8}  "
                   f"{_day(oldest):<18}  {keks}")


def _day(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
