"""Errors raised by the broker runtime. The API maps them to problem+json in one table."""

from __future__ import annotations

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
