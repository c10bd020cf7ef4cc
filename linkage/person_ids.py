"""Handoff person ids: opaque and random, never derived from personal data."""

from __future__ import annotations

import base64
import re
import secrets

PERSON_ID_PREFIX = "hp_"
PERSON_ID_PATTERN = re.compile(r"^hp_[a-z2-7]{16}$")


def new_person_id() -> str:
    """A fresh person id: `hp_` and 80 random bits in lower-case base32 (16 characters)."""
    return PERSON_ID_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode().lower()


def is_person_id(text: str) -> bool:
    return bool(PERSON_ID_PATTERN.match(text))
