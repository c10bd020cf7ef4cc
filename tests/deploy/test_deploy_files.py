"""The Compose stack, Prometheus and Grafana files are valid and agree with the code.

No Docker engine runs here, so each file is checked by the tool that reads it where that
tool runs (docker-compose's own validation, promtool), and against the broker's real
settings, CLI and metrics where the files name them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.auth import read_keys
from broker.config import load_settings
from broker.roles import Roles
from policy import load_bundle
from schemas.catalog import SchemaCatalog
from tests.deploy.deploy_files import (
    COMPOSE,
    DASHBOARD,
    DEPLOY,
    ENV_NAME,
    NON_SETTING_ENV,
    PROMETHEUS,
    REPO,
    compose,
    exposed_metrics,
    handoff_services,
    kube_documents,
    load_yaml,
    option,
    same_value,
    setting_path,
    setting_value,
)
from tests.system_tools import system_tool


def _tool(name: str) -> str:
    return system_tool(name, package={"promtool": "prometheus"}.get(name, name))


def _interpolate(text: str) -> str:
    """Compose's `${VAR:-default}` with an empty environment: the default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text)


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's volumes as {container path: source}, variables at their defaults."""
    pairs = (_interpolate(v).split(":") for v in service.get("volumes", []))
    return {parts[1]: parts[0] for parts in pairs}


# --- Compose -----------------------------------------------------------------------------


@pytest.mark.slow
def test_docker_compose_accepts_the_file() -> None:
    """docker-compose validates against its schema, resolves anchors, interpolation,
    volumes, secrets and depends_on, without an engine."""
    result = subprocess.run(
        [_tool("docker-compose"), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True, text=True, cwd=REPO, env={"PATH": os.environ["PATH"]},
        timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_every_service_has_an_image_a_healthcheck_and_a_restart_policy() -> None:
    for name, svc in compose()["services"].items():
        assert svc.get("image"), f"{name} has no image"
        assert "restart" in svc, f"{name} has no restart policy"
        check = svc.get("healthcheck", {})
        if name == "keys-init":  # one-shot: done is its health
            assert check.get("disable") is True
            continue
        assert check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL")


def test_the_handoff_roles_run_scaled_out_on_kafka() -> None:
    services = handoff_services(compose())
    roles = sorted(option(svc["command"], "--role") for svc in services.values())
    assert roles == ["api", "delivery", "router", "router"]
    for name, svc in services.items():
        env = svc["environment"]
        assert env["HANDOFF_LOG__BACKEND"] == "kafka", name
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (COMPOSE.parent / svc["build"]["context"] / "deploy" / "Dockerfile").is_file()
        # The health check asks the port the process listens on.
        assert svc["healthcheck"]["test"] == [
            "CMD", "handoff-healthcheck", option(svc["command"], "--port"), "/readyz"]
        depends = svc["depends_on"]
        for kafka in ("kafka-1", "kafka-2", "kafka-3"):
            assert depends[kafka]["condition"] == "service_healthy", name
        assert depends["keys-init"]["condition"] == "service_completed_successfully"


def test_the_role_commands_are_ones_handoff_serve_accepts() -> None:
    """Parse each service's command with the real CLI, without running it."""
    import typer.main

    from broker.cli.main import app

    cli = typer.main.get_command(app)
    for name, svc in handoff_services(compose()).items():
        command, *args = svc["command"]
        parent = cli.context_class(cli, info_name="handoff")
        serve = cli.get_command(parent, command)  # type: ignore[attr-defined]
        assert serve is not None, f"{name}: handoff has no command {command}"
        serve.make_context(command, list(args), parent=parent)  # raises on a bad option
        Roles.parse(option(args, "--role"))  # raises on an unknown role


def test_kafka_is_three_kraft_nodes_with_replication_three_and_two_in_sync() -> None:
    services = compose()["services"]
    kafka = {n: s for n, s in services.items() if n.startswith("kafka-")}
    assert len(kafka) == 3
    voters = {f"{s['environment']['KAFKA_NODE_ID']}@{n}:9093" for n, s in kafka.items()}
    for name, svc in kafka.items():
        env = svc["environment"]
        assert svc["image"].startswith("apache/kafka:")
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        data_mount = f"{name}-data:{env['KAFKA_LOG_DIRS']}"
        assert data_mount in svc["volumes"], "Kafka's log must be on a volume"
    (cluster_id,) = {s["environment"]["CLUSTER_ID"] for s in kafka.values()}
    # Kafka's cluster id is a UUID in unpadded base64url: 16 bytes that re-encode the same.
    raw = base64.urlsafe_b64decode(cluster_id + "==")
    assert len(raw) == 16 and base64.urlsafe_b64encode(raw).decode().rstrip("=") == cluster_id
    assert len({s["environment"]["KAFKA_NODE_ID"] for s in kafka.values()}) == 3
    for name, svc in handoff_services(compose()).items():
        env = svc["environment"]
        assert env["HANDOFF_KAFKA__REPLICATION_FACTOR"] == "3", name
        assert set(env["HANDOFF_KAFKA__BOOTSTRAP_SERVERS"].split(",")) == {
            f"{n}:9092" for n in kafka}


def test_keys_are_shared_read_only_and_made_once() -> None:
    services = compose()["services"]
    init = services["keys-init"]
    assert init["entrypoint"] == ["handoff-make-keys", "/var/lib/handoff/keys"]
    assert "handoff-keys:/var/lib/handoff/keys" in init["volumes"]
    for name, svc in handoff_services(compose()).items():
        assert "handoff-keys:/var/lib/handoff/keys:ro" in svc["volumes"], name
        assert _mounts(svc)["/var/lib/handoff"] == f"{name}-data"
        assert svc["secrets"] == ["handoff-api-keys"]
        assert svc["environment"]["HANDOFF_KEYS_FILE"] == "/run/secrets/handoff-api-keys"


def test_the_default_policy_and_api_keys_are_the_demo_bundle_and_keys() -> None:
    """With no overrides the stack mounts a bundle that loads and a keys file that parses."""
    spec = compose()
    for name, svc in handoff_services(spec).items():
        source = COMPOSE.parent / _mounts(svc)["/etc/handoff/policy"]
        assert svc["environment"]["HANDOFF_POLICY_DIR"] == "/etc/handoff/policy"
        bundle = load_bundle(source, SchemaCatalog.load())
        assert bundle.subscriptions, name
    keys_file = COMPOSE.parent / _interpolate(spec["secrets"]["handoff-api-keys"]["file"])
    assert len(read_keys(keys_file)) > 0


# --- Settings named by the deploy files ----------------------------------------------------


def _env_sources() -> list[tuple[str, dict[str, str]]]:
    """(where, {name: value}) for every place the deploy files set HANDOFF_* variables."""
    sources: list[tuple[str, dict[str, str]]] = []
    for name, svc in compose()["services"].items():
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        sources.append((f"compose.yaml services.{name}", env))
    for doc in kube_documents():
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "handoff-settings":
            sources.append(("kubernetes settings.yaml", dict(doc["data"])))
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
                sources.append((f"kubernetes {doc['metadata']['name']}", env))
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    image_env = dict(re.findall(r"(HANDOFF_[A-Z0-9_]+)=(\S+)", dockerfile))
    sources.append(("Dockerfile", image_env))
    return sources


def test_every_handoff_variable_in_the_deploy_files_is_a_real_setting() -> None:
    unknown = [
        f"{where}: {name}"
        for where, env in _env_sources() for name in env
        if name.startswith("HANDOFF_") and name not in NON_SETTING_ENV
        and (not ENV_NAME.match(name) or setting_path(name) is None)
    ]
    assert unknown == [], "no such setting in broker/config.py"


@pytest.mark.parametrize("where,env", [s for s in _env_sources() if any(
    k.startswith("HANDOFF_") for k in s[1])], ids=lambda v: v if isinstance(v, str) else "")
def test_the_settings_load_with_the_values_the_files_give(
        where: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HANDOFF_"):
            monkeypatch.delenv(name)
    handoff_env = {k: v for k, v in env.items() if k.startswith("HANDOFF_") and v}
    for name, value in handoff_env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    for name, value in handoff_env.items():
        path = setting_path(name)
        assert path is not None
        loaded = setting_value(settings, path)
        assert same_value(loaded, value), f"{where}: {name}={value!r} loaded as {loaded!r}"


# --- Prometheus --------------------------------------------------------------------------


@pytest.mark.slow
def test_promtool_accepts_the_prometheus_config() -> None:
    result = subprocess.run([_tool("promtool"), "check", "config", str(PROMETHEUS)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr + result.stdout


def test_prometheus_scrapes_every_handoff_process_where_it_serves_metrics() -> None:
    config = load_yaml(PROMETHEUS)
    targets: dict[str, str] = {}
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            for target in group["targets"]:
                targets[target] = group.get("labels", {}).get("role", "")
    expected = {f"{name}:{option(svc['command'], '--port')}": option(svc["command"], "--role")
                for name, svc in handoff_services(compose()).items()}
    assert {t: r for t, r in targets.items() if t in expected} == expected
    assert set(expected) <= set(targets)
    prometheus = compose()["services"]["prometheus"]
    assert _mounts(prometheus)["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.yml"


def test_the_kubernetes_scrape_job_keeps_the_pods_the_deployments_annotate() -> None:
    job = load_yaml(DEPLOY / "prometheus" / "kubernetes.yml")["scrape_configs"][0]
    relabels = job["relabel_configs"]
    meta = {"__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-z0-9]", "_", k): v
            for d in kube_documents() if d["kind"] == "Deployment"
            for k, v in d["spec"]["template"]["metadata"]["annotations"].items()}
    keep = next(r for r in relabels if r.get("action") == "keep")
    assert re.fullmatch(keep["regex"], meta[keep["source_labels"][0]])
    used = {label for r in relabels for label in r.get("source_labels", [])}
    assert "__meta_kubernetes_pod_annotation_prometheus_io_port" in used
    assert "__meta_kubernetes_pod_label_app_kubernetes_io_component" in used
    address = next(r for r in relabels if r.get("target_label") == "__address__")
    rewritten = re.sub("^" + address["regex"] + "$", address["replacement"].replace("$", "\\"),
                       "10.0.0.7:8080;9100")
    assert rewritten == "10.0.0.7:9100"


# --- Grafana ------------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _queries() -> list[tuple[str, str, str]]:
    """(panel title, PromQL, legend) for every query of the dashboard."""
    return [(p["title"], t["expr"], t.get("legendFormat", ""))
            for p in _dashboard()["panels"] for t in p.get("targets", [])]


def _concrete(expr: str) -> str:
    """A dashboard query as Grafana sends it, with its variables filled in."""
    return (expr.replace("$__rate_interval", "1m")
            .replace("$subscription", ".*").replace("$event_type", ".*"))


GRAFANA_LABELS = {"instance", "job", "role", "le", "namespace", "pod"}


def test_every_dashboard_query_names_metrics_and_labels_handoff_exposes() -> None:
    exposed = exposed_metrics()
    exposed["up"] = set()
    problems = []
    for title, expr, legend in _queries():
        names = set(re.findall(r"\b(handoff_[a-z0-9_]+|up)\b(?=\s*[{\[)])", expr))
        assert names, f"{title}: {expr} names no metric"
        for name in names - set(exposed):
            problems.append(f"{title}: {name} is not a Handoff metric")
        for name, selector in re.findall(r"\b([a-z_][a-z0-9_]*)\{([^}]*)\}", expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", selector):
                if label not in exposed.get(name, set()) | GRAFANA_LABELS:
                    problems.append(f"{title}: {name} has no label {label}")
        grouping = [set(re.split(r"\s*,\s*", g.strip())) for g in
                    re.findall(r"\bby\s*\(([^)]*)\)", expr)]
        available = set().union(*(exposed.get(n, set()) for n in names)) | GRAFANA_LABELS
        for labels in grouping:
            for label in labels - available:
                problems.append(f"{title}: groups by {label}, which no metric has")
        outer = grouping[0] if grouping else set()
        for label in re.findall(r"\{\{(\w+)\}\}", legend):
            if label not in outer:
                problems.append(f"{title}: legend {{{{{label}}}}} is not kept by the query")
    assert problems == []


@pytest.mark.slow
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    rules = [{"record": f"handoff:dashboard:{i}", "expr": _concrete(expr)}
             for i, (_, expr, _) in enumerate(_queries())]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([_tool("promtool"), "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr + result.stdout


def test_the_dashboard_shows_what_operators_watch() -> None:
    """Events in, decisions by outcome, delivery latency p50/p99, router lag and both
    kinds of refusal each have a panel."""
    exprs = " ".join(expr for _, expr, _ in _queries())
    for needed in ("handoff_events_ingested_total", "handoff_decisions_total",
                   "handoff_router_lag_records", "handoff_publish_refused_total",
                   "handoff_access_refused_total"):
        assert needed in exprs
    latency = [e for _, e, _ in _queries() if "handoff_delivery_latency_seconds_bucket" in e]
    assert any(e.startswith("histogram_quantile(0.5,") for e in latency)
    assert any(e.startswith("histogram_quantile(0.99,") for e in latency)
    assert any("by (outcome)" in e for _, e, _ in _queries())


def test_the_dashboard_layout_is_sound() -> None:
    dashboard = _dashboard()
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"{p['title']} overlaps another panel"
        cells |= area
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for p in panels:
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
        for used in re.findall(r"\$(\w+)", json.dumps(p.get("targets", []))):
            assert used in variables or used.startswith("__"), f"{p['title']}: ${used}"


def test_grafana_provisions_the_datasource_and_the_dashboard_folder() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = _mounts(grafana)
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    source = load_yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"][0]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert _interpolate(compose()["services"]["prometheus"]["ports"][0]).endswith(":9090")
    provider = load_yaml(provisioning / "dashboards" / "handoff.yaml")["providers"][0]
    dashboards_dir = provider["options"]["path"]
    assert (COMPOSE.parent / mounts[dashboards_dir] / DASHBOARD.name).is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"
