"""`handoff audit verify` and `handoff audit public-key`: which key signatures are
checked against, exporting it to pin at install, and the verification run.

A checkpoint signature proves something only against a key the verifier trusts. The key
written beside the data (`<data dir>/keys/audit-signing.pem.pub`) is no such key: whoever
can rewrite the audit log can replace or delete it too. So:

- `--public-key FILE`: the key the compliance office pinned at install. Pinned.
- no `--public-key`, the key beside the data present: used, and the report says loudly
  that it is unpinned (standard error and the summary line).
- no key at all: refused (exit 2) unless `--chain-only` asks to check the chain and the
  checkpoints' place in it without their signatures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.audit.chain import SqliteAuditVerifier
from broker.audit.checkpoints import CheckpointSigner, load_public_key, public_key_pem
from broker.audit.errors import AuditKeyError, AuditStoreNotFoundError
from broker.audit.kafka_verify import KafkaAuditVerifier
from broker.audit.paths import (
    KAFKA_INDEX_NAME,
    audit_db_path,
    signing_key_path,
    signing_public_key_path,
)
from broker.audit.store import AuditVerifier, ExportedCheckpoint, VerifyResult
from broker.cli import audit_kafka
from broker.cli.audit_common import (
    EXIT_FAILED,
    ConfigOption,
    KafkaOption,
    TopicPrefixOption,
    failure,
    open_store,
    usage_error,
)
from broker.cli.progress import for_label, progress_bars
from broker.config import KafkaSettings
from broker.errors import AuditError, LogError

Trust = Literal["pinned", "unpinned", "none"]
PINNING = "docs/audit.md, \"Pin the signing key\""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """The public key signatures are checked against, and how far it can be trusted."""

    key: Ed25519PublicKey | None
    trust: Trust
    path: Path | None


def verification_key(public_key: Path | None, chain_only: bool, beside_data: Path
                     ) -> VerificationKey:
    """The key to verify with (see the module docstring); exits 2 when there is none."""
    if public_key is not None and chain_only:
        usage_error("give --public-key or --chain-only, not both")
    if chain_only:
        return VerificationKey(None, "none", None)
    path = public_key if public_key is not None else beside_data
    if public_key is None and not beside_data.is_file():
        usage_error(
            f"no public key to check checkpoint signatures against ({beside_data} is "
            "missing): give the key you pinned at install with --public-key FILE, or "
            f"--chain-only to check the chain without signatures (see {PINNING})")
    try:
        key = load_public_key(path)
    except AuditKeyError as exc:
        usage_error(str(exc))
    return VerificationKey(key, "pinned" if public_key is not None else "unpinned", path)


def warn_unpinned(key: VerificationKey) -> None:
    """Say on standard error, before anything else, that the key is not a pinned one."""
    if key.trust == "unpinned":
        typer.echo(
            f"WARNING: checkpoint signatures are checked against {key.path}, a key kept "
            "beside the data it verifies, not one you pinned: whoever can rewrite the audit "
            "log can replace it too. Verify with the copy pinned at install: --public-key "
            f"FILE ({PINNING}).", err=True)


def _report(result: VerifyResult, key: VerificationKey, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({**result.to_dict(), "key": key.trust,
                               "public_key": None if key.path is None else str(key.path)}))
    elif not result.ok:
        typer.echo(result.summary())
    elif key.trust == "unpinned":
        typer.echo(f"{result.summary()} (signatures checked against an UNPINNED key beside "
                   f"the data: {key.path})")
    elif key.trust == "none":
        typer.echo(result.summary().replace("no public key", "--chain-only")
                   if result.checkpoints_checked else f"{result.summary()} (--chain-only)")
    else:
        typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


def _run(verifier: AuditVerifier, key: VerificationKey,
         exported: list[ExportedCheckpoint]) -> VerifyResult:
    with progress_bars() as meter:
        return verifier.verify(key.key, exported_checkpoints=exported,
                               progress=for_label(meter, "verifying"))


def verify_embedded(data: Path, key: VerificationKey, exported: list[ExportedCheckpoint],
                    as_json: bool) -> None:
    """Verify the embedded store in `data`; print the report; exit 1 if it failed."""
    warn_unpinned(key)
    store = open_store(data)
    try:
        result = _run(SqliteAuditVerifier(store), key, exported)
    except AuditError as exc:
        failure(f"cannot read the audit store: {exc}")
    finally:
        store.close()
    _report(result, key, as_json)


def verify_kafka(settings: KafkaSettings, key: VerificationKey,
                 exported: list[ExportedCheckpoint], index: Path | None, as_json: bool
                 ) -> None:
    """Verify the audit log in Kafka and, given `index`, a local index of it; print the
    report; exit 1 if it failed."""
    warn_unpinned(key)
    event_log = audit_kafka.open_log(settings)
    try:
        result = _run(KafkaAuditVerifier(event_log, index), key, exported)
    except AuditStoreNotFoundError as exc:
        if index is not None and str(index) in str(exc):
            usage_error(str(exc))
        usage_error(f"no audit log in Kafka at {settings.bootstrap_servers} under the topic "
                    f"prefix {settings.topic_prefix!r}")
    except (AuditError, LogError) as exc:
        failure(f"cannot read the audit log in Kafka: {exc}")
    finally:
        event_log.close()
    _report(result, key, as_json)


def verify_command(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="The broker's data directory (holds audit.db, and the "
                     "keys). Not needed with --kafka."),
    ] = None,
    kafka: KafkaOption = None,
    topic_prefix: TopicPrefixOption = None,
    config: ConfigOption = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The Ed25519 public key (PEM) you pinned at install, kept away from the "
            "broker. Without it the key beside the data (DATA/keys/audit-signing.pem.pub) "
            "is used and the report says it is unpinned; with no key at all, verify "
            "refuses unless --chain-only.",
        ),
    ] = None,
    chain_only: Annotated[
        bool, typer.Option("--chain-only", help="Check the chain and where checkpoints "
                           "sit in it, but no signatures (no key is available).")
    ] = False,
    checkpoints: Annotated[
        Path | None,
        typer.Option("--checkpoints", help="Checkpoints exported earlier (JSON lines), "
                     "kept outside the broker; checked as well."),
    ] = None,
    index: Annotated[
        Path | None,
        typer.Option("--index", help="With Kafka: a process's local audit index to check "
                     "against the log (default: DATA/audit-index.db if present).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-walk the hash chain and checkpoints; name the first bad record.

    Verifies the embedded store in --data, or the chains in Kafka with --kafka (or when
    the settings, from --config or HANDOFF_*, select the Kafka backend) and the local
    index queries read there. Exit codes: 0 sound, 1 a problem found, 2 usage error
    (including: no public key and no --chain-only).
    """
    settings = None
    if kafka is not None or data is None:
        settings = audit_kafka.kafka_settings(kafka, topic_prefix, config)
    beside = data if data is not None else audit_kafka.settings_data_dir(config)
    if settings is None and not beside.is_dir():
        usage_error(f"no data directory at {beside}")
    if settings is None and not audit_db_path(beside).is_file():
        usage_error(f"no audit store at {audit_db_path(beside)}")
    if index is not None and not index.is_file():
        usage_error(f"no audit index at {index}")
    key = verification_key(public_key, chain_only, signing_public_key_path(beside))
    exported = (audit_kafka.read_exported_checkpoints(checkpoints)
                if checkpoints is not None else [])
    if settings is None:
        verify_embedded(beside, key, exported, as_json)
    else:
        if index is None and (beside / KAFKA_INDEX_NAME).is_file():
            index = beside / KAFKA_INDEX_NAME
        verify_kafka(settings, key, exported, index, as_json)


def public_key_command(
    data: Annotated[Path, typer.Option("--data", help="The broker's data directory.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the key here (PEM) instead of "
                                  "standard output.")
    ] = None,
) -> None:
    """Print the public key of the audit signing key, to pin at install.

    Derived from the private key itself (DATA/keys/audit-signing.pem), not copied from
    the .pub file beside it. Keep the copy where the broker's operators cannot write, and
    verify with --public-key FILE.
    """
    try:
        signer = CheckpointSigner.load(signing_key_path(data))
    except AuditKeyError as exc:
        usage_error(str(exc))
    pem = public_key_pem(signer.public_key)
    if out is None:
        typer.echo(pem.decode("ascii"), nl=False)
    else:
        try:
            out.write_bytes(pem)
        except OSError as exc:
            usage_error(f"cannot write {out}: {exc.strerror or exc}")
    typer.echo(f"audit signing key {signer.key_id}: keep this public key away from the "
               "broker and verify with --public-key FILE", err=True)
