"""The compliance console: who received what about a family and why, whether the audit
log is intact, and what a policy change would do, in a browser (docs/console.md).

Server-rendered pages (Jinja2) with htmx and uPlot vendored in `static/`, served by the
broker's own app at `/console` to keys with the auditor or admin role.
"""

from broker.console.mount import mount_console

__all__ = ["mount_console"]
