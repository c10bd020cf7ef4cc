"""The Kubernetes manifests are valid for the API server and agree with the broker.

Each resource is validated against the Kubernetes OpenAPI schemas (strict: unknown
fields are errors) that the `kubernetes-validate` package ships, for the oldest and the
newest Kubernetes version we claim. The kustomization is rendered with `kubectl
kustomize` where kubectl is installed (it is on this project's machines).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from policy import load_bundle
from schemas.catalog import SchemaCatalog
from tests.deploy.deploy_files import (
    DEMO_POLICY,
    HANDOFF_ROLES,
    KUBE,
    KUBE_NOT_RESOURCES,
    kube_documents,
    kube_resource,
    load_script,
    load_yaml,
    option,
)

KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
SECRET_SHAPES = {"secret-keys.yaml", "secret-api-keys.yaml"}


def _deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"].removeprefix("handoff-"): d
            for d in kube_documents() if d["kind"] == "Deployment"}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_is_valid_for_the_kubernetes_api(version: str) -> None:
    documents = kube_documents()
    kinds = {d["kind"] for d in documents}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service",
            "PodDisruptionBudget"} <= kinds
    for doc in [*documents, load_yaml(KUBE / "policy-volume.yaml")]:
        if doc["metadata"]["name"] == "handoff-all-roles":  # the patch: complete it first
            doc = _patched(_deployments()["api"], doc)
        kubernetes_validate.validate(doc, version, strict=True)


def _patched(deployment: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`deployment` with the policy patch applied the way kustomize merges it."""
    merged: dict[str, Any] = yaml.safe_load(yaml.safe_dump(deployment))
    template = merged["spec"]["template"]
    template["metadata"].setdefault("annotations", {}).update(
        patch["spec"]["template"]["metadata"]["annotations"])
    patch_volumes = {v["name"]: v for v in patch["spec"]["template"]["spec"]["volumes"]}
    for volume in template["spec"]["volumes"]:
        if volume["name"] in patch_volumes:
            volume["configMap"].update(patch_volumes[volume["name"]]["configMap"])
    return merged


def test_one_deployment_per_role_running_that_role() -> None:
    deployments = _deployments()
    assert set(deployments) == set(HANDOFF_ROLES)
    for role, deployment in deployments.items():
        container = _container(deployment)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == role
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert option(container["args"], "--role") == role
        port = int(option(container["args"], "--port"))
        assert [p["containerPort"] for p in container["ports"]] == [port]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port)
    assert deployments["router"]["spec"]["replicas"] >= 2


def test_probes_ask_healthz_for_liveness_and_readyz_for_readiness() -> None:
    for role, deployment in _deployments().items():
        container = _container(deployment)
        ports = {p["name"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", role
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", role
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", role
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] in ports, f"{role} {probe}"


def test_pods_run_unprivileged_on_a_read_only_root_filesystem() -> None:
    for role, deployment in _deployments().items():
        pod = deployment["spec"]["template"]["spec"]
        container = _container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's user
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, role
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]], "tmp must be writable"
        assert set(m["name"] for m in mounts.values()) <= set(volumes), role
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"]
        assert resources["limits"]["memory"]


def test_settings_policy_and_keys_reach_the_paths_the_settings_name() -> None:
    settings = kube_resource("ConfigMap", "handoff-settings")["data"]
    for role, deployment in _deployments().items():
        container = _container(deployment)
        assert {"configMapRef": {"name": "handoff-settings"}} in container["envFrom"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}

        def volume_at(path: str, mounts: dict[str, Any] = mounts,
                      volumes: dict[str, Any] = volumes) -> dict[str, Any]:
            mount = mounts[path]
            assert mount.get("readOnly") is True, f"{path} must be read-only"
            volume: dict[str, Any] = volumes[mount["name"]]
            return volume

        data_dir = settings["HANDOFF_DATA_DIR"]
        assert "emptyDir" in volumes[mounts[data_dir]["name"]]
        assert volume_at(settings["HANDOFF_POLICY_DIR"])["configMap"]["name"] == \
            "handoff-policy"
        assert volume_at(f"{data_dir}/keys")["secret"]["secretName"] == "handoff-keys"
        keys_file = Path(settings["HANDOFF_KEYS_FILE"])
        api_keys = volume_at(str(keys_file.parent))["secret"]
        assert api_keys["secretName"] == "handoff-api-keys", role
        shape = kube_resource("Secret", "handoff-api-keys")
        assert keys_file.name in shape["stringData"]


def test_the_keys_secret_holds_what_make_keys_makes(tmp_path: Path) -> None:
    make_keys = load_script("make_keys.py")
    made, _ = make_keys.make_keys(tmp_path / "keys")
    shape = kube_resource("Secret", "handoff-keys")
    assert sorted(shape["stringData"]) == sorted(make_keys.KEY_FILES) == sorted(made)
    # Empty placeholders: a broker given them refuses to start rather than invent keys.
    assert set(shape["stringData"].values()) == {""}


def test_the_secrets_are_never_applied_by_the_kustomization() -> None:
    """Re-applying the manifests must not replace real keys with placeholders."""
    kustomization = load_yaml(KUBE / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in KUBE.glob("*.yaml")} - KUBE_NOT_RESOURCES
    assert listed == on_disk - SECRET_SHAPES
    assert not any(d["kind"] == "Secret" for d in kube_documents(sorted(listed)))
    assert kustomization["namespace"] == "handoff"


def test_services_and_the_disruption_budget_select_the_role_pods() -> None:
    deployments = _deployments()
    for service in (d for d in kube_documents() if d["kind"] == "Service"):
        role = service["spec"]["selector"]["app.kubernetes.io/component"]
        pod = deployments[role]["spec"]["template"]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        port_names = {p["name"] for p in _container(deployments[role])["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]
    budget = kube_resource("PodDisruptionBudget", "handoff-router")
    router = deployments["router"]
    assert budget["spec"]["selector"]["matchLabels"] == router["spec"]["selector"]["matchLabels"]
    assert 1 <= budget["spec"]["minAvailable"] < router["spec"]["replicas"]


def _materialise(configmap: dict[str, Any], items: list[dict[str, str]], root: Path) -> Path:
    """Write the files a pod sees in its policy volume."""
    for item in items:
        path = root / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(configmap["data"][item["key"]], encoding="utf-8")
    return root


def test_the_policy_configmap_is_the_demo_bundle_as_pods_see_it(tmp_path: Path) -> None:
    """Rendered from examples/demo/policy and current: the folder a pod mounts loads as
    the same bundle version the ConfigMap and pod template announce."""
    configmap, patch, version = load_script("kubernetes/render_policy.py").render(DEMO_POLICY)
    on_disk = kube_resource("ConfigMap", "handoff-policy")
    assert on_disk["data"] == configmap["data"], "rerun render_policy.py"
    assert load_yaml(KUBE / "policy-volume.yaml") == patch, "rerun render_policy.py"
    items = patch["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"]
    assert sorted(i["key"] for i in items) == sorted(on_disk["data"])
    folder = _materialise(on_disk, items, tmp_path / "policy")
    assert load_bundle(folder, SchemaCatalog.load()).version == version
    assert on_disk["metadata"]["annotations"]["handoff/policy-version"] == version
    assert patch["spec"]["template"]["metadata"]["annotations"] == {
        "handoff/policy-version": version}


def test_render_policy_refuses_a_broken_bundle(tmp_path: Path) -> None:
    render_policy = load_script("kubernetes/render_policy.py")
    broken = tmp_path / "policy"
    shutil.copytree(DEMO_POLICY, broken)
    (broken / "subscriptions.yaml").write_text("subscriptions:\n  - id: x\n")
    out = tmp_path / "out"
    out.mkdir()
    assert render_policy.main([str(broken), "--out", str(out)]) == 1
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_kustomize_renders_each_role_with_the_policy_laid_out(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run([kubectl, "kustomize", str(KUBE)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert all(d["metadata"].get("namespace", "handoff") == "handoff" for d in rendered)
    deployments = [d for d in rendered if d["kind"] == "Deployment"]
    assert len(deployments) == len(HANDOFF_ROLES)
    configmap = next(d for d in rendered if d["metadata"]["name"] == "handoff-policy")
    version = configmap["metadata"]["annotations"]["handoff/policy-version"]
    for deployment in deployments:
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
        template = deployment["spec"]["template"]
        assert template["metadata"]["annotations"]["handoff/policy-version"] == version
        assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        volume = next(v for v in template["spec"]["volumes"] if v["name"] == "policy")
        assert volume["configMap"]["defaultMode"] == 0o444
        root = tmp_path / deployment["metadata"]["name"]
        folder = _materialise(configmap, volume["configMap"]["items"], root)
        assert load_bundle(folder, SchemaCatalog.load()).version == version
        image = template["spec"]["containers"][0]["image"]
        assert image == "registry.example.org/handoff:0.1.0"
