"""The verification snippets in docs/audit.md work, as written, on real exports."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from broker.audit import CheckpointSigner, export_checkpoints, export_jsonl
from broker.audit.paths import signing_key_path, signing_public_key_path
from broker.audit.plans import DecisionDetail
from broker.audit.records import CanonicalDetail, canonical_json

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[3] / "docs" / "audit.md"


def snippet(name: str) -> str:
    found = re.search(
        rf"<!-- snippet: {name} -->\n```python\n(.*?)```", DOC.read_text(encoding="utf-8"),
        re.DOTALL,
    )
    assert found, f"docs/audit.md has no snippet {name}"
    return found.group(1)


def run(tmp_path: Path, name: str, *args: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / f"{name}.py"
    script.write_text(snippet(name), encoding="utf-8")
    return subprocess.run([sys.executable, str(script), *map(str, args)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def exported(tmp_path, data_dir, store, decision, pseudonymizer):
    signer = CheckpointSigner.load_or_create(signing_key_path(data_dir))
    for start in (0, 10, 20):
        store.append([decision(f"Zoë-{n % 3}", n) for n in range(start, start + 10)])
        signer.checkpoint(store)
    export = tmp_path / "audit.jsonl"
    with export.open("w", encoding="utf-8") as handle:
        export_jsonl(store, handle)
    checkpoints = tmp_path / "checkpoints.jsonl"
    checkpoints.write_text("".join(json.dumps(c) + "\n" for c in export_checkpoints(store)))
    return export, checkpoints


def test_documented_export_verification_accepts_a_sound_export(tmp_path, exported, store):
    result = run(tmp_path, "verify-export", exported[0])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ok: 30 records, head sha256:{store.head()[1]}\n"


def test_documented_export_verification_rejects_an_edited_line(tmp_path, exported):
    export = exported[0]
    lines = export.read_text(encoding="utf-8").splitlines()
    lines[6] = lines[6].replace('"hv-nfp"', '"cw-hotline"', 1)
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run(tmp_path, "verify-export", export)
    assert result.returncode == 1
    assert "record 7: chain broken" in result.stderr


def test_documented_checkpoint_verification(tmp_path, data_dir, exported):
    export, checkpoints = exported
    result = run(tmp_path, "verify-checkpoints", signing_public_key_path(data_dir), export,
                 checkpoints)
    assert result.returncode == 0, result.stderr
    other = CheckpointSigner.load_or_create(tmp_path / "other.pem")
    assert other.key_id
    result = run(tmp_path, "verify-checkpoints", tmp_path / "other.pem.pub", export,
                 checkpoints)
    assert result.returncode != 0
    assert "InvalidSignature" in result.stderr


def _compact(n: int, plan_text: str, digest: str) -> DecisionDetail:
    own = {"consent_ids": [], "decision_id": f"{n:032x}", "decision_time_ms": n,
           "event_id": f"ev-{n}", "plan": digest}
    return DecisionDetail(canonical_json(own), digest, plan_text)


def test_documented_export_verification_checks_plan_references(tmp_path, store, decision):
    plan_text = canonical_json({"event_type": "birth", "fields": [], "purpose": "Zoë's care"})
    digest = hashlib.sha256(plan_text.encode()).hexdigest()
    store.append([decision("MPI-1", n, detail=_compact(n, plan_text, digest))
                  for n in range(3)])
    export = tmp_path / "audit.jsonl"
    with export.open("w", encoding="utf-8") as handle:
        export_jsonl(store, handle)
    result = run(tmp_path, "verify-export", export)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ok: 4 records, head sha256:{store.head()[1]}\n"
    # A writer that left the plan out: every hash is sound, the reference is not.
    store.append([decision("MPI-1", 9, detail=CanonicalDetail(
        _compact(9, plan_text, "ab" * 32).text))])
    with export.open("w", encoding="utf-8") as handle:
        export_jsonl(store, handle)
    result = run(tmp_path, "verify-export", export)
    assert result.returncode == 1
    assert "record 5: its decision plan is not an earlier record" in result.stderr
