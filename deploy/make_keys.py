#!/usr/bin/env python3
"""Create the broker's own keys in one folder, ready to mount as `<data dir>/keys`.

Every process of one Handoff deployment (api, delivery, every router) must hold the
same keys, or pseudonyms and checkpoint signatures would differ between processes:

    policy-pseudonym.key       HMAC key for pseudonymised identifiers sent to subscribers
    subject-pseudonym.key      HMAC key for the subject pseudonyms in the audit log
    audit-signing.pem          Ed25519 key that signs audit checkpoints
    audit-signing.pem.pub      its public half: pin a copy outside the deployment

Keys that already exist are kept, so running this again is safe. The keys are made by
the same code the broker uses on first start, so the broker accepts them as they are.

    python deploy/make_keys.py deploy/secrets/keys
    kubectl -n handoff create secret generic handoff-keys --from-file=deploy/secrets/keys
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broker.audit.checkpoints import CheckpointSigner
from broker.audit.paths import PSEUDONYM_KEY_NAME, SIGNING_KEY_NAME
from broker.audit.pseudonym import load_or_create_pseudonym_key
from broker.bootstrap import load_or_create_secret
from broker.errors import HandoffError

POLICY_PSEUDONYM_KEY_NAME = "policy-pseudonym.key"
KEY_FILES = (
    POLICY_PSEUDONYM_KEY_NAME,
    PSEUDONYM_KEY_NAME,
    SIGNING_KEY_NAME,
    SIGNING_KEY_NAME + ".pub",
)


def make_keys(folder: Path) -> tuple[list[str], str]:
    """Create whichever keys are missing in `folder`.

    Returns the names created and the signing key's id (`ed25519:…`), the name to pin.
    Raises `HandoffError` when a key cannot be read or written.
    """
    existing = {name for name in KEY_FILES if (folder / name).exists()}
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    load_or_create_secret(folder / POLICY_PSEUDONYM_KEY_NAME)
    load_or_create_pseudonym_key(folder / PSEUDONYM_KEY_NAME)
    signer = CheckpointSigner.load_or_create(folder / SIGNING_KEY_NAME)
    created = [name for name in KEY_FILES if name not in existing]
    return created, signer.key_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where to write the keys")
    args = parser.parse_args(argv)
    try:
        created, key_id = make_keys(args.folder)
    except HandoffError as exc:
        print(f"make_keys: {exc}", file=sys.stderr)
        return 1
    for name in KEY_FILES:
        state = "created" if name in created else "kept"
        print(f"{state:8} {args.folder / name}")
    print(f"checkpoint signing key {key_id}: pin {args.folder / KEY_FILES[-1]} elsewhere")
    return 0


if __name__ == "__main__":
    sys.exit(main())
