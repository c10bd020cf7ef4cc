"""Who is calling: API keys, client certificates, principals and roles."""

from broker.auth.keys import (
    ApiKey,
    KeyCheck,
    KeyRing,
    Principal,
    Role,
    hash_key,
    load_keyring,
    read_keys,
)
from broker.auth.watch import FileKeyRing

__all__ = ["ApiKey", "FileKeyRing", "KeyCheck", "KeyRing", "Principal", "Role", "hash_key",
           "load_keyring", "read_keys"]
