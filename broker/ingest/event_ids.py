"""What an `event_id` may be.

An event id is chosen by the publisher and then travels everywhere: to every subscriber
that receives the event, into decisions, the accounting of disclosures and exports of
the audit log, and the idempotency index. So it must never be personal data. It is 1 to
128 characters of letters, digits, `.`, `_`, `:` and `-`, starting with a letter or a
digit, and it is refused when it is, or contains, a number written the way a Social
Security number or a US telephone number is written (`123-45-6789`, `123456789`,
`608-555-0142`, `6085550142`). A UUID always passes; an id of nine or ten digits
alone is refused, so give such ids a prefix (`order-123456789` passes).

Refusing, rather than pseudonymising the id in the audit log, keeps the id the same
everywhere, so re-sending an event is still recognised as a duplicate and a subscriber
still de-duplicates by `event_id`.
"""

from __future__ import annotations

import re

EVENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_WHOLE_NUMBER = re.compile(
    r"(?:\d{3}[-.]?\d{2}[-.]?\d{4}"                    # an SSN
    r"|(?:1[-.]?)?\d{3}[-.]?\d{3}[-.]?\d{4})")         # a US phone number
_WRITTEN_INSIDE = re.compile(
    r"(?<![0-9])(?:\d{3}[-.]\d{2}[-.]\d{4}|\d{3}[-.]\d{3}[-.]\d{4})(?![0-9])")

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
"""A UUID in its usual text. It fits the pattern, and no SSN or telephone number can be
written inside it (its groups of 8, 4, 4, 4 and 12 characters leave no room for 3-2-4 or
3-3-4 digits between dashes), so it passes with one match instead of three."""

RULE = ("1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit "
        "(a UUID fits)")


def event_id_problem(event_id: str) -> str | None:
    """Why `event_id` cannot be used (never quoting it), or None."""
    if len(event_id) == 36 and _UUID.fullmatch(event_id):
        return None
    if not EVENT_ID_PATTERN.fullmatch(event_id):
        return f"an event id is {RULE}"
    if _WHOLE_NUMBER.fullmatch(event_id) or _WRITTEN_INSIDE.search(event_id):
        return ("an event id must not be or contain a number written like a Social "
                "Security or telephone number; use a UUID")
    return None
