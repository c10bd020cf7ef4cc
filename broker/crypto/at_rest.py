"""Encryption at rest from the settings: the key-encryption keys configured, and the
event log wrapped in an `EncryptedEventLog` when encryption is enabled."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from broker.config import EncryptionSettings
from broker.crypto.encrypted_log import encrypted_log
from broker.crypto.errors import KekError
from broker.crypto.kek import KeyEncryptionKey, load_kek
from broker.crypto.keyring import DataKeyring
from broker.crypto.keystore import LogKeyStore
from broker.log.port import EventLog

log = logging.getLogger("handoff.encryption")


def kek_from_settings(settings: EncryptionSettings, environ: Mapping[str, str]
                      ) -> tuple[KeyEncryptionKey, list[KeyEncryptionKey]]:
    """The configured KEK and the one being retired (if any)."""
    kek = load_kek(settings.kek_file, settings.kek_env, environ)
    if kek is None:
        raise KekError("encryption is enabled but no key-encryption key is configured; set "
                       "encryption.kek_file or encryption.kek_env (create a key with "
                       "`handoff encryption new-kek`)")
    previous = load_kek(settings.previous_kek_file, settings.previous_kek_env, environ,
                        what="encryption.previous_kek_file / encryption.previous_kek_env")
    return kek, [previous] if previous is not None else []


def encrypt_if_enabled(inner: EventLog, settings: EncryptionSettings,
                       environ: Mapping[str, str]) -> EventLog:
    """`inner` itself, or wrapped in an `EncryptedEventLog` when encryption is enabled.

    Keys still wrapped by `previous_kek_*` are re-wrapped under the current KEK here, so
    a KEK rotation completes when every process has restarted with the new key."""
    if not settings.enabled:
        return inner
    kek, retired = kek_from_settings(settings, environ)
    keyring = DataKeyring(LogKeyStore(inner), kek, retired,
                          period_ms=int(settings.key_period * 1000))
    if retired and keyring.needs_rewrap():
        moved = keyring.rewrap(kek)
        log.info("re-wrapped %d data keys under %s", moved, kek.kek_id)
    return encrypted_log(inner, keyring, settings.topics)
