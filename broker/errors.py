"""Errors raised by the broker runtime. The API maps them to problem+json in one table."""

from __future__ import annotations

import errno
import sqlite3

from schemas.errors import HandoffError


class BrokerError(HandoffError):
    """Root of runtime errors."""


class LogError(BrokerError):
    """The event log failed."""


class LogUnavailableError(LogError):
    """The log cannot be reached or written right now; retrying later may succeed."""

    retriable = True


class UnknownTopicError(LogError, LookupError):
    """The topic does not exist."""


class TopicMismatchError(LogError):
    """A topic exists with a partition count or cleanup policy other than required."""


class AuditError(BrokerError):
    """The audit log failed or was found tampered with."""


class ConfigError(BrokerError, ValueError):
    """Settings or a configuration file are invalid. The message says what to fix."""


class StorageFullError(LogUnavailableError):
    """A disk the broker writes to is full; retrying once space is freed can succeed."""


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = 13


def storage_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an exception it was raised from, says a disk is full: an
    `OSError` with `ENOSPC`/`EDQUOT`, SQLite's `SQLITE_FULL`, or a `StorageFullError`."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StorageFullError):
            return True
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and (
                (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == _SQLITE_FULL
                or "disk is full" in str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
