"""Why an open call's key no longer admits it, and how a wait ends when it lapses
(issue 10, item 3; the real server is tested in tests/integration/auth/test_open_streams)."""

from __future__ import annotations

from datetime import UTC, datetime

from broker.auth import KeyRing, Principal, Role
from broker.auth.keys import ApiKey

T0 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


def key(**changes: object) -> ApiKey:
    fields: dict[str, object] = {"id": "nfp", "agency": "hv-nfp", "roles": [Role.SUBSCRIBE],
                                 "sha256": "0" * 64}
    return ApiKey.model_validate({**fields, **changes})


PRINCIPAL = Principal("nfp", "hv-nfp", frozenset({Role.SUBSCRIBE}))


def test_a_key_in_force_has_not_lapsed():
    assert KeyRing([key()], clock=lambda: T0).lapsed(PRINCIPAL) is None


def test_each_way_a_key_stops_admitting_its_caller_is_named():
    later = datetime(2026, 11, 2, tzinfo=UTC)
    assert KeyRing([key(revoked_at=later)], clock=lambda: later.timestamp()
                   ).lapsed(PRINCIPAL) == "key_revoked"
    assert KeyRing([key(expires_at=later)], clock=lambda: later.timestamp()
                   ).lapsed(PRINCIPAL) == "key_expired"
    assert KeyRing([], clock=lambda: T0).lapsed(PRINCIPAL) == "key_removed"
    assert KeyRing([key(agency="medicaid")], clock=lambda: T0
                   ).lapsed(PRINCIPAL) == "key_changed"
    assert KeyRing([key(roles=[Role.PUBLISH])], clock=lambda: T0
                   ).lapsed(PRINCIPAL) == "key_changed"
