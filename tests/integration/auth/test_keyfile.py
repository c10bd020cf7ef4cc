"""Issuing, rotating and revoking keys in a real keys file, and a key ring following it."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from broker.auth import FileKeyRing, Role, hash_key, read_keys
from broker.auth.keyfile import KeyFile, KeyFileError, parse_duration, parse_expiry
from broker.errors import ConfigError

NOW = datetime(2026, 11, 7, 9, 0, tzinfo=UTC)


def ring_at(path, moment: datetime) -> FileKeyRing:
    return FileKeyRing(path, interval=0, clock=lambda: moment.timestamp())


def test_issue_prints_a_key_once_and_stores_only_its_digest(tmp_path):
    path = tmp_path / "keys.yaml"
    issued = KeyFile(path).issue("county-general", [Role.PUBLISH, Role.SUBSCRIBE], now=NOW)
    text = path.read_text()
    assert issued.secret.startswith("hk_") and len(issued.secret) > 40
    assert issued.secret not in text and hash_key(issued.secret) in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    principal = ring_at(path, NOW).authenticate(issued.secret)
    assert principal is not None and principal.agency == "county-general"
    assert principal.roles == {Role.PUBLISH, Role.SUBSCRIBE}
    assert principal.key_id == issued.entry.id


def test_an_expired_key_is_named_but_refused(tmp_path):
    path = tmp_path / "keys.yaml"
    issued = KeyFile(path).issue("medicaid", [Role.SUBSCRIBE], key_id="medicaid-pull",
                                 expires_at=NOW + timedelta(days=1), now=NOW)
    assert ring_at(path, NOW + timedelta(hours=23)).authenticate(issued.secret) is not None
    check = ring_at(path, NOW + timedelta(days=1)).check(issued.secret)
    assert check.principal is None
    assert check.key is not None and check.key.id == "medicaid-pull"
    assert check.reason == "key expired"


def test_rotation_keeps_the_old_key_working_only_through_the_overlap(tmp_path):
    path = tmp_path / "keys.yaml"
    keyfile = KeyFile(path)
    old = keyfile.issue("cw-hotline", [Role.PUBLISH], key_id="hotline", now=NOW)
    new = keyfile.rotate("hotline", timedelta(hours=24), now=NOW + timedelta(hours=1))
    assert new.entry.id == "hotline.r2" and new.entry.replaces == "hotline"
    assert new.entry.roles == {Role.PUBLISH} and new.entry.agency == "cw-hotline"
    during = ring_at(path, NOW + timedelta(hours=24))
    assert during.authenticate(old.secret) is not None
    assert during.authenticate(new.secret) is not None
    after = ring_at(path, NOW + timedelta(hours=25, seconds=1))
    assert after.authenticate(old.secret) is None
    assert after.authenticate(new.secret) is not None
    # Rotating again names the next successor, not hotline.r2.r2.
    assert keyfile.rotate("hotline.r2", timedelta(hours=1), now=NOW).entry.id == "hotline.r3"


def test_revocation_refuses_at_once_and_keeps_the_entry(tmp_path):
    path = tmp_path / "keys.yaml"
    keyfile = KeyFile(path)
    issued = keyfile.issue("hv-nfp", [Role.SUBSCRIBE], key_id="nfp", now=NOW)
    keyfile.revoke("nfp", now=NOW + timedelta(minutes=5))
    check = ring_at(path, NOW + timedelta(minutes=5)).check(issued.secret)
    assert check.principal is None and check.reason == "key revoked"
    assert [k.id for k in read_keys(path)] == ["nfp"]
    with pytest.raises(KeyFileError, match="revoked"):
        keyfile.rotate("nfp", timedelta(hours=1), now=NOW + timedelta(minutes=6))


def test_edits_keep_the_operators_comments(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text("# Production keys: ask the integration team before editing.\n"
                    "keys:\n"
                    "  - id: auditor  # the privacy office\n"
                    "    agency: state-privacy-office\n"
                    "    roles: [auditor]\n"
                    f"    sha256: {hash_key('k' * 40)}\n")
    KeyFile(path).issue("medicaid", [Role.PUBLISH], now=NOW)
    KeyFile(path).revoke("auditor", now=NOW)
    text = path.read_text()
    assert "# Production keys: ask the integration team" in text
    assert "# the privacy office" in text
    assert [k.id for k in read_keys(path)] == ["auditor", read_keys(path)[1].id]


def test_unknown_ids_and_duplicate_ids_are_refused_without_touching_the_file(tmp_path):
    path = tmp_path / "keys.yaml"
    keyfile = KeyFile(path)
    keyfile.issue("medicaid", [Role.PUBLISH], key_id="m1", now=NOW)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="no key with id 'm2'"):
        keyfile.revoke("m2")
    with pytest.raises(KeyFileError, match="already exists"):
        keyfile.issue("medicaid", [Role.PUBLISH], key_id="m1")
    assert path.read_bytes() == before


def test_durations_and_expiry_times():
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_expiry("90d", NOW) == NOW + timedelta(days=90)
    assert parse_expiry("2027-01-01T00:00:00Z", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(KeyFileError):
        parse_duration("tomorrow")


def test_a_running_ring_follows_the_file_and_keeps_the_last_good_keys(tmp_path):
    path = tmp_path / "keys.yaml"
    first = KeyFile(path).issue("medicaid", [Role.PUBLISH], key_id="m1")
    ring = FileKeyRing(path, interval=0)
    assert ring.authenticate(first.secret) is not None
    second = KeyFile(path).issue("medicaid", [Role.PUBLISH], key_id="m2")
    assert ring.authenticate(second.secret) is not None
    KeyFile(path).revoke("m1")
    assert ring.authenticate(first.secret) is None
    # A hand edit that breaks the file: the broker keeps the keys it had. (The ring
    # notices the edit by the file's size, whatever the clock's resolution.)
    path.write_text(path.read_text().replace("roles: [publish]", "roles: [root]", 1))
    assert ring.authenticate(second.secret) is not None
    assert ring.last_error is not None and "roles" in ring.last_error


def test_an_entry_needs_exactly_one_credential(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text("keys:\n  - id: both\n    agency: a\n    roles: [publish]\n"
                    f"    sha256: {hash_key('x' * 40)}\n    mtls_subject: a.example.org\n"
                    "  - id: neither\n    agency: a\n    roles: [publish]\n")
    with pytest.raises(ConfigError) as info:
        read_keys(path)
    assert "keys[0]" in str(info.value) and "keys[1]" in str(info.value)
