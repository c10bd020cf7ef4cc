"""Errors raised by connectors and the connector runtime.

A connector raises these (or lets its library's errors through, which the runtime treats
as a crash). `retriable` tells the runtime what to do next:

- `RetriableConnectorError` (`retriable = True`): the other system is unavailable for a
  while. The runtime logs it, waits with exponential backoff, and restarts the connector
  from its last committed position.
- `FatalConnectorError` (and `ConnectorConfigError`, such as an unreadable mapping):
  retrying cannot help (bad credentials, a missing table, an invalid configuration). The
  runtime marks the connector failed and does not restart it; the message tells the
  operator what to fix.

Any other exception counts as a crash: the runtime restarts the connector with backoff,
up to the connector's `max_restarts` consecutive failures (forever when unset).

Messages name fields, files, line numbers and ids, never the values of a record, because
they reach logs, `GET /v1/connectors` and metrics.
"""

from __future__ import annotations

from schemas.errors import HandoffError


class ConnectorError(HandoffError):
    """Root of connector errors."""


class ConnectorConfigError(ConnectorError, ValueError):
    """A connector configuration is invalid or names an unknown connector type."""


class RetriableConnectorError(ConnectorError):
    """The source or destination system is unavailable right now; retrying may succeed."""

    retriable = True


class FatalConnectorError(ConnectorError):
    """The connector cannot continue without an operator fixing something."""


class MappingError(ConnectorConfigError):
    """A field mapping is invalid (raised when the mapping is loaded, not per record)."""
