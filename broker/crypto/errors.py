"""Errors of encryption at rest and data keys."""

from __future__ import annotations

from broker.errors import BrokerError, ConfigError


class CryptoError(BrokerError):
    """Encrypting or decrypting data at rest failed."""


class KekError(ConfigError):
    """A key-encryption key is missing, malformed, or not the one the data keys need.

    Fatal: the message tells the operator which setting or file to fix.
    """


class DataKeyUnavailableError(CryptoError, LookupError):
    """A data key is not known, was shredded, or could not be unwrapped."""
