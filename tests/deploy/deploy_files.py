"""Reads the files under `deploy/` the way the tools that consume them would."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from pydantic import BaseModel

from broker.config import Settings
from broker.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
KUBE = DEPLOY / "kubernetes"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "handoff.json"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DEMO_POLICY = REPO / "examples" / "demo" / "policy"

HANDOFF_ROLES = ("api", "delivery", "router")
ENV_NAME = re.compile(r"^HANDOFF_[A-Z0-9_]+$")
# Environment variables Handoff reads that are not settings fields.
NON_SETTING_ENV = {"HANDOFF_CONFIG", "HANDOFF_ROLE"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def handoff_services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Compose services that run `handoff serve`, by name."""
    return {name: svc for name, svc in spec["services"].items()
            if svc.get("command", [])[:1] == ["serve"]}


def option(args: list[str], name: str) -> str:
    """The value of `--name VALUE` in an argument list."""
    return args[args.index(name) + 1]


KUBE_NOT_RESOURCES = {"kustomization.yaml", "policy-volume.yaml"}


def kube_documents(names: list[str] | None = None) -> list[dict[str, Any]]:
    """Every resource in the Kubernetes YAML files (or in the files named); the
    kustomization and its patch are not resources."""
    paths = [KUBE / n for n in names] if names else sorted(
        p for p in KUBE.glob("*.yaml") if p.name not in KUBE_NOT_RESOURCES)
    docs: list[dict[str, Any]] = []
    for path in paths:
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs


def kube_resource(kind: str, name: str) -> dict[str, Any]:
    for doc in kube_documents():
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return doc
    raise LookupError(f"no {kind} {name} under {KUBE}")


def setting_path(env_name: str) -> list[str] | None:
    """The settings field an environment variable sets (`HANDOFF_LOG__BACKEND` →
    `['log', 'backend']`), or None when no such setting exists."""
    parts = env_name.removeprefix("HANDOFF_").lower().split("__")
    model: type[BaseModel] = Settings
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return None
            model = annotation
    return parts


def setting_value(settings: Settings, path: list[str]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value


def same_value(loaded: Any, text: str) -> bool:
    """Whether a loaded setting is what the environment string said."""
    if hasattr(loaded, "get_secret_value"):
        loaded = loaded.get_secret_value()
    if isinstance(loaded, bool):
        return str(loaded).lower() == text.lower()
    if isinstance(loaded, int | float):
        return float(text) == float(loaded)
    return str(loaded) == text


def exposed_metrics() -> dict[str, set[str]]:
    """Every series name Handoff exposes, with its label names (histograms and counters
    expanded the way Prometheus' text format writes them)."""
    metrics = Metrics()
    names: dict[str, set[str]] = {}
    for collector in metrics.__dict__.values():
        if not hasattr(collector, "_labelnames"):
            continue
        family = collector.describe()[0]
        labels = set(collector._labelnames)
        if family.type == "counter":
            suffixes = ["_total", "_created"]
        elif family.type == "histogram":
            suffixes = ["_sum", "_count", "_created"]
            names[family.name + "_bucket"] = labels | {"le"}
        else:
            suffixes = [""]
        for suffix in suffixes:
            names[family.name + suffix] = set(labels)
    return names


def load_script(relative: str) -> ModuleType:
    """Import one of the scripts under `deploy/` (they are not a package)."""
    path = DEPLOY / relative
    name = "deploy_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
