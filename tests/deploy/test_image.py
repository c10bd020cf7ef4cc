"""The Dockerfile and .dockerignore: what the image runs as, and what the build sees.

No engine runs here, so the build context is computed with the Docker SDK's own
.dockerignore rules, and `pip` builds the package from exactly that context, as the
Dockerfile's build stage does.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

from tests.deploy.deploy_files import DEPLOY, REPO, compose, handoff_services, kube_documents


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def _context() -> set[str]:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    return set(exclude_paths(str(REPO), patterns, dockerfile="deploy/Dockerfile"))


def test_the_image_is_slim_python_311_running_handoff_as_an_unprivileged_user() -> None:
    args = dict(re.findall(r"ARG (\w+)=(\S+)", (DEPLOY / "Dockerfile").read_text()))
    final = _final_stage()
    base = final[0][1].replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", ""))
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), base
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    # Nothing runs as root after the switch to the service user.
    after_user = final[[w for w, _ in final].index("USER"):]
    assert all(word != "RUN" for word, _ in after_user)
    entrypoint = json.loads(dict(final)["ENTRYPOINT"])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["handoff"] and "handoff" in scripts
    healthcheck = dict(final)["HEALTHCHECK"]
    assert healthcheck.endswith('CMD ["handoff-healthcheck"]')


def test_the_service_uid_is_the_one_compose_and_kubernetes_expect() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "--uid 10001" in text and "--gid 10001" in text
    for doc in kube_documents():
        if doc["kind"] == "Deployment":
            context = doc["spec"]["template"]["spec"]["securityContext"]
            assert (context["runAsUser"], context["fsGroup"]) == (10001, 10001)


def test_the_image_exposes_the_ports_the_roles_listen_on() -> None:
    exposed = {port for word, rest in _final_stage() if word == "EXPOSE"
               for port in rest.split()}
    for name, svc in handoff_services(compose()).items():
        command = svc["command"]
        assert command[command.index("--port") + 1] in exposed, name


def test_the_build_context_has_what_pip_install_needs_and_no_secrets_or_state() -> None:
    context = _context()
    for needed in ("pyproject.toml", "README.md", "broker/cli/main.py",
                   "schemas/events/birth.avsc", "policy/rulepacks/hipaa.yaml",
                   "deploy/healthcheck.py", "deploy/make_keys.py", "deploy/Dockerfile"):
        assert needed in context, needed
    for word, rest in _instructions():
        if word == "COPY" and "--from=" not in rest:
            source = rest.split()[-2]
            assert source == "." or source in context, f"COPY {source}: not in the context"
    leaked = [path for path in context if
              path.startswith((".git/", ".handoff/", "deploy/secrets/", "tests/"))
              or path.endswith((".db", ".db-wal", ".pem", ".key", "keys.env"))]
    assert leaked == []


@pytest.mark.slow
def test_pip_builds_the_package_from_the_build_context(tmp_path: Path) -> None:
    """The build stage's `pip wheel .` works on what .dockerignore lets through, and the
    wheel carries the schemas, rule packs and the `handoff` command."""
    context = tmp_path / "context"
    for relative in sorted(_context()):
        source = REPO / relative
        if source.is_file():
            target = context / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--wheel-dir", str(tmp_path / "wheels"), str(context)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "wheels").glob("handoff-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "schemas/events/birth.avsc" in names
    assert "policy/rulepacks/hipaa.yaml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "handoff = broker.cli.main:app" in zipfile.ZipFile(wheel).read(entry_points).decode()
