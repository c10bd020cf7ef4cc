"""`handoff audit`: verify, export and query the tamper-evident audit log.

Exit codes: 0 success; 1 the chain failed verification (or the store is unreadable);
2 usage errors (missing data directory, audit store or key file, bad arguments).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from broker.audit.checkpoints import export_checkpoints
from broker.audit.disclosures import Disclosure
from broker.audit.errors import (
    AuditKeyError,
    AuditQueryError,
)
from broker.audit.export import export_records
from broker.audit.paths import (
    pseudonym_key_path,
)
from broker.audit.pseudonym import (
    SubjectPseudonymizer,
    is_subject_pseudonym,
    load_pseudonym_key,
)
from broker.audit.store import AuditFilter
from broker.cli import audit_kafka, audit_verify
from broker.cli.audit_common import (
    ConfigOption,
    KafkaOption,
    TopicPrefixOption,
    failure,
    open_store,
    usage_error,
)
from broker.cli.linkage_accounting import has_person_index, linked_disclosures
from broker.cli.progress import for_label, progress_bars
from broker.errors import AuditError

app = typer.Typer(
    no_args_is_help=True,
    help="Verify, query and export the tamper-evident audit log. Exit codes: 0 ok, "
    "1 verification failed, 2 usage error (missing directory, store or key).",
)
app.command("verify")(audit_verify.verify_command)
app.command("public-key")(audit_verify.public_key_command)

class ExportFormatChoice(StrEnum):
    """Export formats offered on the command line."""

    jsonl = "jsonl"
    csv = "csv"


DataOption = Annotated[
    Path, typer.Option("--data", help="The broker's data directory (holds audit.db).")
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Write here instead of standard output.")
]
PseudonymKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--pseudonym-key-file",
        help="Subject pseudonym key (default: DATA/keys/subject-pseudonym.key).",
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="From this time, inclusive: ISO date/time (UTC if no "
                 "offset) or epoch milliseconds."),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Before this time, exclusive; same forms.")
]
def _parse_time(value: str | None, option: str) -> int | None:
    """Epoch milliseconds from an ISO date or date-time (UTC unless it has an offset)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        usage_error(f"{option} must be an ISO date or date-time, or epoch milliseconds")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _pseudonymizer(data: Path, key_file: Path | None) -> SubjectPseudonymizer:
    path = key_file if key_file is not None else pseudonym_key_path(data)
    try:
        return SubjectPseudonymizer(load_pseudonym_key(path))
    except AuditKeyError as exc:
        usage_error(str(exc))


@contextlib.contextmanager
def _output(out: Path | None) -> Iterator[TextIO]:
    if out is None:
        yield sys.stdout
        return
    try:
        handle = out.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        usage_error(f"cannot write {out}: {exc.strerror or exc}")
    with handle:
        yield handle


@app.command("export")
def export_command(
    data: DataOption,
    fmt: Annotated[
        ExportFormatChoice, typer.Option("--format", help="jsonl (verifiable) or csv.")
    ] = ExportFormatChoice.jsonl,
    out: OutOption = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Raw subject id; pseudonymised with "
                                 "the pseudonym key before searching.")
    ] = None,
    subject_pseudonym: Annotated[
        str | None, typer.Option("--subject-pseudonym", help="Subject pseudonym (sp_…).")
    ] = None,
    recipient: Annotated[str | None, typer.Option(help="Recipient agency id.")] = None,
    source: Annotated[str | None, typer.Option(help="Source agency id.")] = None,
    agreement: Annotated[str | None, typer.Option(help="Agreement id.")] = None,
    subscription: Annotated[str | None, typer.Option(help="Subscription id.")] = None,
    outcome: Annotated[str | None, typer.Option(help="permit, deny, refused, …")] = None,
    kind: Annotated[str | None, typer.Option(help="decision, publish_refused, …")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    pseudonym_key_file: PseudonymKeyOption = None,
) -> None:
    """Export records as JSON lines or CSV, optionally filtered."""
    if subject is not None and subject_pseudonym is not None:
        usage_error("give --subject or --subject-pseudonym, not both")
    if subject is not None:
        subject_pseudonym = _pseudonymizer(data, pseudonym_key_file).pseudonym(subject)
    try:
        where = AuditFilter(
            subject=subject_pseudonym, recipient=recipient, agreement=agreement,
            outcome=outcome, kind=kind, source=source, subscription=subscription,
            since_ms=_parse_time(since, "--since"), until_ms=_parse_time(until, "--until"),
        )
    except AuditQueryError as exc:
        usage_error(str(exc))
    store = open_store(data)
    try:
        with _output(out) as handle, progress_bars(
                enabled=not (handle is sys.stdout and sys.stdout.isatty())) as meter:
            # Counting first costs an index scan: only for a bar someone watches.
            total = store.count(where)[0].count if meter is not None else 0
            count = export_records(store, handle, fmt.value, where,
                                   for_label(meter, "exporting"), total)
    except AuditError as exc:
        failure(str(exc))
    finally:
        store.close()
    typer.echo(f"exported {count} records", err=True)


@app.command("checkpoints")
def checkpoints_command(
    data: Annotated[
        Path | None, typer.Option("--data", help="The broker's data directory (holds "
                                  "audit.db). Not needed with --kafka.")
    ] = None,
    out: OutOption = None,
    kafka: KafkaOption = None,
    topic_prefix: TopicPrefixOption = None,
    config: ConfigOption = None,
) -> None:
    """Export the signed checkpoints as JSON lines, to keep outside the broker."""
    exported: list[dict[str, Any]] = []
    if kafka is not None or data is None:
        kafka_settings = audit_kafka.kafka_settings(kafka, topic_prefix, config)
        if kafka_settings is not None:
            exported = audit_kafka.export_checkpoints(kafka_settings)
        else:
            data = audit_kafka.settings_data_dir(config)
    if data is not None:
        store = open_store(data)
        try:
            exported = export_checkpoints(store)
        except AuditError as exc:
            failure(str(exc))
        finally:
            store.close()
    with _output(out) as handle:
        for checkpoint in exported:
            handle.write(json.dumps(checkpoint, sort_keys=True) + "\n")
    typer.echo(f"exported {len(exported)} checkpoints", err=True)


_TABLE_HEADER = (
    "DATE (UTC)", "RECIPIENT", "SUBSCRIPTION", "EVENT", "PURPOSE", "DATA DISCLOSED",
    "LEGAL BASIS", "CONSENTS", "DECISION",
)


def _table_row(disclosure: Disclosure) -> tuple[str, ...]:
    return (
        disclosure.date, disclosure.recipient or "-", disclosure.subscription or "-",
        disclosure.event_type or "-", disclosure.purpose or "-",
        ", ".join(disclosure.data_disclosed) or "-", "; ".join(disclosure.legal_basis) or "-",
        ", ".join(disclosure.consent_ids) or "-", disclosure.decision_id or "-",
    )


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                   .rstrip())


@app.command("disclosures")
def disclosures_command(
    data: Annotated[
        Path | None, typer.Option("--data", help="The broker's data directory (audit.db "
                                  "and keys; default: the settings').")
    ] = None,
    kafka: KafkaOption = None,
    topic_prefix: TopicPrefixOption = None,
    config: ConfigOption = None,
    index: Annotated[
        Path | None, typer.Option("--index", help="With Kafka: a local index file to keep "
                                  "and reuse (default: a temporary one).")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="The person's raw subject id.")
    ] = None,
    subject_pseudonym: Annotated[
        str | None, typer.Option("--subject-pseudonym", help="Or their pseudonym (sp_…).")
    ] = None,
    agency: Annotated[
        str | None, typer.Option("--agency", help="Record linkage: the agency whose id "
                                 "--subject is; the accounting then covers the person it "
                                 "is linked to, across every agency's records (embedded).")
    ] = None,
    pseudonym_key_file: PseudonymKeyOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """Accounting of disclosures for one person (HIPAA 164.528 / FERPA 99.32 style),
    from the embedded store or, with --kafka (or Kafka settings), from Kafka."""
    if (subject is None) == (subject_pseudonym is None):
        usage_error("give --subject or --subject-pseudonym (one of them)")
    kafka_settings = None
    if kafka is not None or data is None:
        kafka_settings = audit_kafka.kafka_settings(kafka, topic_prefix, config)
    if data is None:
        data = audit_kafka.settings_data_dir(config)
    if subject is not None:
        pseudonym = _pseudonymizer(data, pseudonym_key_file).pseudonym(subject)
    else:
        assert subject_pseudonym is not None
        if not is_subject_pseudonym(subject_pseudonym):
            usage_error("--subject-pseudonym must look like sp_ followed by 32 hex digits")
        pseudonym = subject_pseudonym
    try:
        where = AuditFilter(subject=pseudonym, since_ms=_parse_time(since, "--since"),
                            until_ms=_parse_time(until, "--until"))
    except AuditQueryError as exc:
        usage_error(str(exc))
    if agency is not None and (subject is None or kafka_settings is not None):
        usage_error("--agency takes --subject, on the embedded store (--data); on Kafka "
                    "ask GET /v1/audit/disclosures/{subject_id}?agency=…")
    if kafka_settings is not None:
        found = audit_kafka.disclosures(kafka_settings, index, where)
    else:
        store = open_store(data)
        try:
            if subject is not None and (agency is not None or has_person_index(data)):
                # Record linkage: the persons the id is linked to, across agencies.
                found = linked_disclosures(data, store, agency, subject, _pseudonymizer(
                    data, pseudonym_key_file), where)
            else:
                found = store.disclosures(where)
        except AuditError as exc:
            failure(str(exc))
        finally:
            store.close()
    if as_json:
        typer.echo(json.dumps(
            {"subject_pseudonym": pseudonym, "disclosures": [d.to_dict() for d in found]},
            indent=2, ensure_ascii=False,
        ))
        return
    typer.echo(f"Accounting of disclosures for subject {pseudonym}: {len(found)} disclosures")
    if found:
        _print_table([_TABLE_HEADER, *(_table_row(item) for item in found)])
