"""`handoff report`: aggregate reports from an installation's data, for evaluators.

`handoff report referrals` prints the referral funnel (docs/referrals.md) as a table, CSV
or JSON, from the data directory's log and referral ledger; it runs beside a running
broker or without one. Small cells are suppressed exactly as `GET /v1/reports/referrals`
suppresses them. Exit codes: 0 printed, 2 a usage or configuration problem.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from broker.bootstrap import open_referral_reports
from broker.cli.errors import exit_on_config_error
from broker.config import load_settings
from broker.errors import UnknownTopicError
from broker.referral_service import ReportRequestError
from referrals.report_render import to_csv, to_json, to_table

app = typer.Typer(no_args_is_help=True, help="Aggregate reports for evaluators: counts "
                  "only, small cells suppressed.")


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command("referrals")
def referrals(
    data: Annotated[Path | None, typer.Option(help="the broker's data directory")] = None,
    policy: Annotated[Path | None, typer.Option(help="policy bundle folder")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML settings file")] = None,
    format: Annotated[ReportFormat, typer.Option(
        "--format", help="table, csv or json")] = ReportFormat.table,
    threshold: Annotated[int | None, typer.Option(
        help="suppress counts below this; at least referrals.report_threshold "
             "(default 11)")] = None,
    timezone: Annotated[str | None, typer.Option(
        help="IANA time zone of the months (default referrals.report_timezone)")] = None,
    at: Annotated[str | None, typer.Option(
        help="report as of this time, ISO 8601 (default now)")] = None,
    out: Annotated[Path | None, typer.Option(help="write here, not to standard output")
                   ] = None,
) -> None:
    """The referral funnel by receiving program, referring agency and month."""
    with exit_on_config_error():
        settings = load_settings(config, policy_dir=policy, data_dir=data)
        at_ms = _millis(at) if at else None
        service, close = open_referral_reports(settings)
    try:
        report = service.funnel(threshold=threshold, timezone=timezone, at_ms=at_ms)
    except (ReportRequestError, UnknownTopicError) as exc:
        typer.echo(f"handoff: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        close()
    if format is ReportFormat.json:
        text = json.dumps(to_json(report), indent=2) + "\n"
    else:
        text = to_csv(report) if format is ReportFormat.csv else to_table(report) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


def _millis(text: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("--at: an ISO 8601 date or time, e.g. 2026-12-01") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)
