"""`handoff keys`: issue, list, rotate and revoke API keys in the keys file.

The file holds only SHA-256 digests; a new key is printed once, on standard output, and
cannot be shown again. A running broker picks up every change within a second (or at
once on SIGHUP). Exit codes: 0 done; 2 usage error (unknown id, bad duration, bad or
missing file).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from broker.auth import Role, hash_key
from broker.auth.keyfile import KeyFile, parse_duration, parse_expiry
from broker.cli.errors import exit_on_config_error
from broker.config import load_settings

app = typer.Typer(
    no_args_is_help=True,
    help="Issue, list, rotate and revoke API keys (stored hashed in the keys file). "
    "Exit codes: 0 done, 2 usage error (including a missing keys file).",
)

KeysOption = Annotated[Path | None, typer.Option(
    "--keys", help="The keys file (default: api keys_file setting, or <data>/keys.yaml).")]
DataOption = Annotated[Path | None, typer.Option(
    "--data", help="The broker's data directory, whose keys.yaml is used without --keys.")]


def _keyfile(keys: Path | None, data: Path | None) -> KeyFile:
    if keys is not None:
        return KeyFile(keys)
    return KeyFile(load_settings(data_dir=data).resolved_keys_file)


def _existing_keyfile(keys: Path | None, data: Path | None) -> KeyFile:
    """The keys file to read or change, which must exist (only `issue` starts one)."""
    keyfile = _keyfile(keys, data)
    if not keyfile.path.is_file():
        typer.echo(f"handoff: no keys file at {keyfile.path} (give --keys FILE or "
                   "--data DIR; `handoff keys issue` starts one)", err=True)
        raise typer.Exit(2)
    return keyfile


def _print_secret(secret: str, key_id: str) -> None:
    typer.echo(secret)
    typer.echo(f"handoff: issued key '{key_id}'. It is shown only now; give it to the "
               "agency over a secure channel.", err=True)


@app.command("issue")
def issue(
    agency: Annotated[str, typer.Option("--agency", help="The agency the key acts for.")],
    role: Annotated[list[Role], typer.Option("--role", help="A role; repeat for several.")],
    expires: Annotated[str | None, typer.Option(
        "--expires", help="When the key stops working: a duration (90d, 12h) or an "
        "ISO 8601 time.")] = None,
    key_id: Annotated[str | None, typer.Option(
        "--id", help="The key's id in the audit log (default: <agency>-<random>).")] = None,
    keys: KeysOption = None,
    data: DataOption = None,
) -> None:
    """Issue a new key and print it once; only its digest is stored."""
    with exit_on_config_error():
        now = datetime.now(UTC)
        expires_at = parse_expiry(expires, now) if expires else None
        issued = _keyfile(keys, data).issue(agency, role, key_id=key_id,
                                            expires_at=expires_at, now=now)
    _print_secret(issued.secret, issued.entry.id)


@app.command("list")
def list_keys(keys: KeysOption = None, data: DataOption = None) -> None:
    """List keys: id, agency, roles, status and expiry. Never the keys themselves."""
    with exit_on_config_error():
        entries = _existing_keyfile(keys, data).entries()
    now = time.time()
    rows = [("ID", "AGENCY", "ROLES", "STATUS", "EXPIRES", "CREDENTIAL")]
    for e in entries:
        expires = e.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") \
            if e.expires_at else "-"
        credential = "api key" if e.sha256 else f"mtls {e.mtls_subject}"
        rows.append((e.id, e.agency, ",".join(sorted(r.value for r in e.roles)),
                     e.status(now), expires, credential))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())


@app.command("rotate")
def rotate(
    key_id: Annotated[str, typer.Argument(help="The id of the key to replace.")],
    overlap: Annotated[str, typer.Option(
        "--overlap", help="How long the old key keeps working (e.g. 24h, 7d).")] = "24h",
    keys: KeysOption = None,
    data: DataOption = None,
) -> None:
    """Issue a successor key (printed once); the old key stops after the overlap."""
    with exit_on_config_error():
        issued = _existing_keyfile(keys, data).rotate(key_id, parse_duration(overlap))
    _print_secret(issued.secret, issued.entry.id)
    typer.echo(f"handoff: '{key_id}' keeps working for {overlap}.", err=True)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The id of the key to refuse from now on.")],
    keys: KeysOption = None,
    data: DataOption = None,
) -> None:
    """Refuse a key from now on (the entry stays, for the record)."""
    with exit_on_config_error():
        _existing_keyfile(keys, data).revoke(key_id)
    typer.echo(f"handoff: key '{key_id}' revoked.", err=True)


@app.command("hash")
def hash_cmd() -> None:
    """Print the SHA-256 digest of a key read from standard input (for hand-written
    keys files)."""
    secret = sys.stdin.readline().strip()
    if not secret:
        typer.echo("handoff: give the key on standard input", err=True)
        raise typer.Exit(2)
    typer.echo(hash_key(secret))
