"""Server-rendered pages: one Jinja2 environment, the layout's navigation, time helpers.

Templates autoescape everything; no template holds a script or a style attribute, so
the Content-Security-Policy (`headers.py`) forbids inline ones.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from broker.console.security import ConsoleUser

HERE = Path(__file__).resolve().parent
NAV = (
    ("map", "/console/map", "Sharing map"),
    ("decisions", "/console/decisions", "Decisions"),
    ("accounting", "/console/accounting", "Accounting of disclosures"),
    ("consents", "/console/consents", "Consents"),
    ("policy", "/console/policy", "Policy dry-run"),
    ("integrity", "/console/integrity", "Integrity"),
    ("flow", "/console/flow", "Flow"),
    ("referrals", "/console/referrals", "Referrals"),
    ("linkage", "/console/linkage", "Linkage review"),
)


def utc_text(at_ms: int | None) -> str:
    if at_ms is None:
        return ""
    return datetime.fromtimestamp(at_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def day_text(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def day_start_ms(text: str | None, *, after: bool = False) -> int | None:
    """`YYYY-MM-DD` as the first millisecond of that day (UTC), or of the next day when
    `after` (an inclusive end date); None for empty or malformed input."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    if after:
        day += timedelta(days=1)
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


ENV = Environment(loader=FileSystemLoader(HERE / "templates"),
                  autoescape=select_autoescape(default=True, default_for_string=True),
                  trim_blocks=True, lstrip_blocks=True)
ENV.filters["utc"] = utc_text
ENV.filters["day"] = day_text
ENV.filters["short"] = lambda text: (text[:11] + "…") if text and len(text) > 12 else text


def page(request: Request, user: ConsoleUser | None, template: str, active: str = "",
         status: int = 200, **context: object) -> HTMLResponse:
    html = ENV.get_template(template).render(
        user=user, nav=NAV, active=active, csrf=user.csrf if user else "",
        path=request.url.path, **context)
    return HTMLResponse(html, status_code=status)


def fragment(template: str, **context: object) -> HTMLResponse:
    return HTMLResponse(ENV.get_template(template).render(**context))
