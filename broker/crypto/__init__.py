"""Encryption at rest: key-encryption keys, data keys and sealed record values.

`broker.crypto.encrypted_log.EncryptedEventLog` applies them to the event log.
"""

from broker.crypto.errors import CryptoError, DataKeyUnavailableError, KekError
from broker.crypto.kek import KeyEncryptionKey, LocalKek, load_kek, write_new_kek
from broker.crypto.keyring import DataKeyring, DataKeyShreddedError
from broker.crypto.keystore import KEYS_TOPIC, DataKeyEntry, KeyStore, LogKeyStore

__all__ = [
    "KEYS_TOPIC",
    "CryptoError",
    "DataKeyEntry",
    "DataKeyShreddedError",
    "DataKeyUnavailableError",
    "DataKeyring",
    "KekError",
    "KeyEncryptionKey",
    "KeyStore",
    "LocalKek",
    "LogKeyStore",
    "load_kek",
    "write_new_kek",
]
