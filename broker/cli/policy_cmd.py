"""`handoff policy`: check a policy bundle, and explain what a subscriber would receive.

Exit codes:
  check    0 the bundle is valid; 1 it has problems (each printed as
           `file:line: field: message`); 2 usage error (for example a missing folder).
  explain  0 the decision is permit; 3 it is deny; 1 invalid input (bundle, event or
           consents file); 2 usage error.
"""

from __future__ import annotations

import json
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from policy import BundleError, Decision, PolicyBundle, PolicyEngine, load_bundle
from policy.explain import InvalidConsentError
from policy.explain import explain as explain_event
from schemas.catalog import BUILTIN_DIR, SchemaCatalog
from schemas.errors import RecordValidationError, SchemaError
from schemas.jsonform import record_from_json

EXIT_PERMIT = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_DENY = 3

app = typer.Typer(
    no_args_is_help=True,
    help="Check policy bundles and explain decisions (dry run). Exit codes: check 0 valid, "
    "1 problems; explain 0 permit, 3 deny, 1 invalid input; 2 usage error.",
)

BundleDir = Annotated[Path, typer.Argument(
    exists=True, file_okay=False, dir_okay=True, help="The policy bundle folder.")]
SchemasOption = Annotated[Path, typer.Option(
    "--schemas", exists=True, file_okay=False,
    help="Folder of the state's own event schemas (.avsc), in addition to the shipped "
         "ones (as `handoff serve --schemas`).")]


def _fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _load(directory: Path, schemas: Path) -> tuple[SchemaCatalog, PolicyBundle]:
    """Load the catalog and bundle; print every problem and exit 1 if the bundle is bad."""
    try:
        catalog = SchemaCatalog.load_all(BUILTIN_DIR, schemas)
    except SchemaError as exc:
        _fail(f"{schemas}: {exc}")
    try:
        return catalog, load_bundle(directory, catalog)
    except BundleError as exc:
        for problem in exc.problems:
            typer.echo(str(problem))
        typer.echo(f"{len(exc.problems)} problem(s) in {directory}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


@app.command()
def check(directory: BundleDir, schemas: SchemasOption = BUILTIN_DIR) -> None:
    """Validate a bundle: print `ok: ... version sha256:...`, or every problem, one a line.

    Exit codes: 0 valid, 1 problems found, 2 usage error (for example a missing folder).
    """
    _, bundle = _load(directory, schemas)
    for warning in bundle.warnings:
        typer.echo(str(warning))
    typer.echo(f"ok: {bundle.summary()} version {bundle.version}")


# -- explain ---------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"{path}: cannot read: {exc.strerror or exc.__class__.__name__}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > 1:  # JSON lines
            try:
                return [json.loads(line) for line in lines]
            except json.JSONDecodeError:
                pass
        _fail(f"{path}:{first.lineno}: invalid JSON: {first.msg}")


def _record(path: Path, schema: dict[str, Any], data: Any, where: str = "") -> dict[str, Any]:
    try:
        return record_from_json(schema, data)
    except RecordValidationError as exc:
        detail = "; ".join(f"{p or '<record>'}: {m}" for p, m in exc.problems)
        _fail(f"{path}{where}: does not match the schema: {detail}")


def _millis(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _consents(path: Path, catalog: SchemaCatalog) -> list[tuple[dict[str, Any], int]]:
    """Consent records from a JSON list (or JSON lines), each counted as ingested at its
    own `occurred_at`."""
    data = _read_json(path)
    items = data if isinstance(data, list) else [data]
    schema = dict(catalog.get("consent").schema)
    records = [_record(path, schema, item, f"[{index}]") for index, item in enumerate(items)]
    return [(record, _millis(record["occurred_at"])) for record in records]


def _table(decision: Decision) -> str:
    rows = [(f.path, f.status, f.transform or "", ", ".join(f.rule_ids), f.reason)
            for f in decision.fields]
    head = ("FIELD", "STATUS", "TRANSFORM", "RULES", "REASON")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = []
    for row in [head, *rows]:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    return "\n".join(lines)


def _render(decision: Decision) -> str:
    at = datetime.fromtimestamp(decision.decision_time_ms / 1000, UTC).isoformat()
    out = [
        f"decision: {decision.outcome.upper()}"
        + (f" ({decision.deny_reason})" if decision.deny_reason else ""),
        f"subscription {decision.subscription_id} ({decision.recipient}, purpose "
        f"{decision.purpose}) <- {decision.source} {decision.event_type} "
        f"v{decision.schema_version} at {at}",
        f"agreement: {decision.agreement_id or '-'}   consents: "
        f"{', '.join(decision.consent_ids) or '-'}   bundle: {decision.bundle_version}",
        f"released {len(decision.released)}, transformed {len(decision.transformed)}, "
        f"withheld {len(decision.withheld)}",
        "",
        _table(decision),
    ]
    if decision.legal_basis:
        out += ["", "legal basis:", *(f"  - {b}" for b in decision.legal_basis)]
    if decision.obligations:
        out += ["", "obligations:", *(f"  - {o.id}: {o.text}" for o in decision.obligations)]
    return "\n".join(out)


@app.command()
def explain(
    directory: BundleDir,
    event: Annotated[Path, typer.Option("--event", exists=True, dir_okay=False,
                                        help="The event, as JSON (dates as ISO strings).")],
    event_type: Annotated[str, typer.Option("--type", help="Event type, e.g. birth.")],
    source: Annotated[str, typer.Option("--source", help="Publishing agency id.")],
    subscription: Annotated[str, typer.Option("--subscription", help="Subscription id.")],
    consents: Annotated[Path | None, typer.Option(
        "--consents", exists=True, dir_okay=False,
        help="Consent records: a JSON list or JSON lines; each counts from its "
             "occurred_at.")] = None,
    recorded_by: Annotated[str | None, typer.Option(
        "--recorded-by", help="Agency taken to have recorded the consents (default: "
                              "--source).")] = None,
    at: Annotated[datetime | None, typer.Option(
        "--at", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        help="Decision time (ISO 8601); defaults to the event's occurred_at.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
    show_view: Annotated[bool, typer.Option(
        "--show-view", help="Also print the record the subscriber would receive. It holds "
                            "personal data; pseudonyms use a throw-away key.")] = False,
    schemas: SchemasOption = BUILTIN_DIR,
) -> None:
    """Explain what a subscription would receive of one event, field by field, and why.

    Exit codes: 0 permit, 3 deny, 1 invalid input (bundle, event or consents file,
    unknown subscription or event type), 2 usage error.
    """
    catalog, bundle = _load(directory, schemas)
    if event_type not in catalog:
        _fail(f"--type: unknown event type '{event_type}'; known: "
              f"{', '.join(catalog.event_types())}")
    if subscription not in bundle.subscriptions:
        _fail(f"--subscription: no subscription '{subscription}' in {directory}")
    schema = catalog.get(event_type)
    record = _record(event, dict(schema.schema), _read_json(event))
    given = _consents(consents, catalog) if consents is not None else []
    # The decision time: --at, else the event's own occurred_at.
    at_ms = _millis(at) if at is not None else _millis(record["occurred_at"])
    # Dry runs use a throw-away key: their pseudonyms never match production ones.
    engine = PolicyEngine(bundle, catalog, pseudonym_key=secrets.token_bytes(32))
    try:
        explained = explain_event(engine, event_type, schema.version, record, source,
                                  subscription, at_ms=at_ms, consents=given,
                                  consents_recorded_by=recorded_by)
    except InvalidConsentError as exc:
        _fail(f"{consents}[{exc.index}]: {exc}")
    decision = explained.decision
    if as_json:
        typer.echo(json.dumps(decision.to_dict(), indent=2))
    else:
        typer.echo(_render(decision))
    if show_view and explained.view is not None:
        typer.echo("")
        typer.echo(json.dumps(explained.view, indent=2))
    sys.stdout.flush()
    raise typer.Exit(EXIT_PERMIT if decision.outcome == "permit" else EXIT_DENY)
