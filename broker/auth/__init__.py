"""Who is calling: API keys, principals and roles."""

from broker.auth.keys import ApiKey, KeyRing, Principal, Role, hash_key, load_keyring

__all__ = ["ApiKey", "KeyRing", "Principal", "Role", "hash_key", "load_keyring"]
