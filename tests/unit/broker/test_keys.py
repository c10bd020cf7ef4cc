import pytest

from broker.auth import Role, hash_key, load_keyring
from broker.errors import ConfigError


def test_keyring_authenticates_by_digest_and_never_stores_the_key(tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "keys:\n"
        "  - id: hospital-publisher\n"
        "    agency: county-general\n"
        "    roles: [publish]\n"
        f"    sha256: {hash_key('s3cret-key-value')}\n"
    )
    ring = load_keyring(keys)
    principal = ring.authenticate("s3cret-key-value")
    assert principal is not None
    assert principal.agency == "county-general"
    assert principal.has(Role.PUBLISH) and not principal.has(Role.AUDITOR)
    assert ring.authenticate("s3cret-key-valuE") is None
    assert "s3cret-key-value" not in keys.read_text()


def test_missing_keys_file_refuses_everyone(tmp_path):
    assert load_keyring(tmp_path / "absent.yaml").authenticate("anything") is None


def test_bad_keys_file_names_entry_and_field(tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n  - id: x\n    agency: a\n    roles: [superuser]\n"
                    "    sha256: nothex\n")
    with pytest.raises(ConfigError) as info:
        load_keyring(keys)
    message = str(info.value)
    assert "keys[0].roles" in message and "keys[0].sha256" in message


def test_demo_keys_env_matches_demo_keys_yaml():
    from pathlib import Path

    demo = Path(__file__).parents[3] / "examples" / "demo"
    ring = load_keyring(demo / "keys.yaml")
    secrets = [line.split("=", 1)[1] for line in (demo / "keys.env").read_text().splitlines()
               if line.startswith("HANDOFF_DEMO_KEY_")]
    assert secrets and all(ring.authenticate(s) is not None for s in secrets)
    assert len(ring) == len(secrets)
