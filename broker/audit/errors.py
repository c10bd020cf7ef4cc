"""Errors raised by the audit log. All derive from `broker.errors.AuditError`."""

from __future__ import annotations

from broker.errors import AuditError


class AuditEntryError(AuditError, ValueError):
    """An audit entry cannot be recorded as given (raw identifier, detail not JSON-ready).

    The message names the attribute and the problem, never the offending value.
    """


class AuditStoreUnavailableError(AuditError):
    """The audit store cannot be written or read right now; retrying later may succeed."""

    retriable = True


class AuditStoreNotFoundError(AuditError, LookupError):
    """No audit store exists at the given path."""


class AuditKeyError(AuditError, ValueError):
    """A signing, public or pseudonym key file is missing, unreadable or malformed."""


class AuditQueryError(AuditError, ValueError):
    """A query or export was asked for with invalid arguments."""


class AuditFormatError(AuditError, ValueError):
    """An exported record or checkpoint is malformed and cannot be read back."""
