"""The connectors file: validated up front, errors that say where and what to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connectors.config_file import load_connectors_file
from connectors.errors import ConnectorConfigError

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connectors.yaml"
    path.write_text(text)
    return path


def test_relative_paths_are_relative_to_the_file(tmp_path):
    path = write(tmp_path, """
connectors:
  - {name: births, type: file_drop, agency: county-general, folder: drop,
     mapping: mappings/births.yaml}
  - {name: outbox, type: postgres_outbox, agency: cw-hotline, dsn: "host=db"}
""")
    drop, outbox = load_connectors_file(path)
    assert drop.folder == tmp_path / "drop"
    assert drop.mapping == tmp_path / "mappings" / "births.yaml"
    assert outbox.table == "handoff_outbox"
    assert "host=db" not in repr(outbox)  # the dsn is a secret


@pytest.mark.parametrize(("text", "message"), [
    ("connectors:\n  - {name: a, type: ftp}\n",
     r"connectors\[0\]: unknown connector type 'ftp'; available: .*file_drop"),
    ("connectors:\n  - {name: a, type: file_drop, agency: x, folder: f, mapping: m, "
     "colour: red}\n", r"connectors\[0\]: connector 'a': colour: Extra inputs"),
    ("connectors:\n  - {name: A B, type: file_drop, agency: x, folder: f, mapping: m}\n",
     "connector 'A B': name: String should match pattern"),
    ("connectors:\n  - {type: postgres_outbox, agency: x}\n",
     "connector '\\?': name: Field required; dsn: Field required"),
    ("connectors:\n  - {name: a, type: postgres_outbox, agency: x, dsn: d}\n"
     "  - {name: a, type: postgres_outbox, agency: x, dsn: d}\n",
     "names must be unique; a appear"),
    ("connectors: {name: a}\n", "expected a mapping with a 'connectors' list"),
    ("connectors: [\n", r"connectors\.yaml:\d+: invalid YAML"),
])
def test_a_bad_connectors_file_is_refused_naming_the_problem(tmp_path, text, message):
    with pytest.raises(ConnectorConfigError, match=message):
        load_connectors_file(write(tmp_path, text))


@pytest.mark.slow
def test_connect_check_validates_and_exits_2_on_a_problem(tmp_path):
    good = write(tmp_path, "connectors:\n  - {name: a, type: postgres_outbox, agency: x, "
                           "dsn: d}\n")
    ok = subprocess.run([sys.executable, "-m", "broker.cli.main", "connect", "check",
                         str(good)], cwd=REPO, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and ok.stdout == "a: postgres_outbox ok\n"
    bad = write(tmp_path, "connectors:\n  - {name: a, type: ftp}\n")
    refused = subprocess.run([sys.executable, "-m", "broker.cli.main", "connect", "check",
                              str(bad)], cwd=REPO, capture_output=True, text=True,
                             check=False)
    assert refused.returncode == 2 and "unknown connector type 'ftp'" in refused.stderr
