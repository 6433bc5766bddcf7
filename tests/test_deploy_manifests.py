"""The Kubernetes manifests in ``deploy/kubernetes`` are valid and name only what exists.

No cluster runs here, so CI checks what a cluster would refuse or get wrong:
every resource validates against Kubernetes' own schemas (``kubernetes-validate``,
strict), the production overlay's patches land on a base resource and the
patched result validates too, each kustomization lists every file beside it, and
every service, port, command and ``IOT_*`` variable the manifests and
docker-compose.yml name exists in the code and the README's configuration table.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from iotkit.config import DEFAULT_METRICS_PORTS, DEFAULT_PORTS, SERVICES, metrics_variable
from iotsuite.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
PRODUCTION = KUBERNETES / "overlays" / "production"
KUBERNETES_VERSION = "1.30.0"
"""The oldest Kubernetes the manifests promise to run on (gRPC probes are GA since 1.27)."""

PROCESSES = (*SERVICES, "gateway")


def documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of ``path`` (empty ones left out)."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path) -> dict[str, Any]:
    """``directory``'s kustomization.yaml."""
    (document,) = documents(directory / "kustomization.yaml")
    return document


def resources(directory: Path) -> list[dict[str, Any]]:
    """Every resource a kustomization lists from its own directory (not other bases)."""
    listed = kustomization(directory)["resources"]
    return [doc for name in listed if name.endswith(".yaml") for doc in documents(directory / name)]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    """The base resources of ``kind``, by name."""
    return {r["metadata"]["name"]: r for r in resources(BASE) if r["kind"] == kind}


def merge(base: Any, patch: Any) -> Any:
    """A strategic-merge patch as kustomize applies it to these manifests: maps merge
    key by key, lists of named items merge by ``name``, anything else is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and all("name" in i for i in patch):
        items = {item["name"]: item for item in base}
        for item in patch:
            items[item["name"]] = (
                merge(items[item["name"]], item) if item["name"] in items else item
            )
        return list(items.values())
    return patch


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The one container of ``deployment``."""
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def readme_variables() -> set[str]:
    """The ``IOT_*`` variables of the README's configuration table."""
    readme = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `(IOT_[A-Z_]+)` \|", readme, flags=re.MULTILINE))


def whole_resource_files() -> list[Path]:
    """Every manifest that holds whole resources: not a kustomization, not a patch."""
    patches = {PRODUCTION / p["path"] for p in kustomization(PRODUCTION).get("patches", [])}
    files = sorted([*BASE.glob("*.yaml"), *PRODUCTION.glob("*.yaml")])
    return [p for p in files if p.name != "kustomization.yaml" and p not in patches]


@pytest.mark.parametrize("path", whole_resource_files(), ids=lambda p: p.name)
def test_every_resource_validates_against_the_kubernetes_schemas(path: Path) -> None:
    for document in documents(path):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_resource_that_breaks_the_schema_is_refused() -> None:
    # The check above can fail: a probe with a misspelt field is refused.
    deployment = copy.deepcopy(by_kind("Deployment")["auth"])
    container(deployment)["readinessProbe"]["grpc"]["prot"] = 50051
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("directory", [BASE, PRODUCTION], ids=["base", "production"])
def test_each_kustomization_lists_every_file_beside_it(directory: Path) -> None:
    document = kustomization(directory)
    local = {name for name in document["resources"] if not name.startswith("..")}
    patches = {patch["path"] for patch in document.get("patches", [])}
    beside = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    assert local | patches == beside
    for name in document["resources"]:
        assert (directory / name).exists(), name


def test_the_production_patches_land_on_base_resources_and_still_validate() -> None:
    document = kustomization(PRODUCTION)
    deployments = by_kind("Deployment")
    for patch_file in document["patches"]:
        (patch,) = documents(PRODUCTION / patch_file["path"])
        target = deployments[patch["metadata"]["name"]]
        patched = merge(target, patch)
        assert len(patched["spec"]["template"]["spec"]["containers"]) == 1, "a container renamed"
        kubernetes_validate.validate(patched, KUBERNETES_VERSION, strict=True)
    for replicas in document["replicas"]:
        assert replicas["name"] in deployments
    images = {container(d)["image"].partition(":")[0] for d in deployments.values()}
    assert {image["name"] for image in document["images"]} == images


def test_every_process_has_a_deployment_running_its_module() -> None:
    deployments = by_kind("Deployment")
    assert set(deployments) == set(PROCESSES)
    for name in SERVICES:
        assert container(deployments[name])["command"] == ["python", "-m", f"services.{name}"]
    assert container(deployments["gateway"])["command"] == ["python", "-m", "gateway"]
    for name in PROCESSES:
        assert (ROOT / (f"services/{name}" if name in SERVICES else name) / "__main__.py").exists()


def test_the_migration_job_runs_a_command_of_the_cli() -> None:
    (job,) = by_kind("Job").values()
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "iot" and command[1] in COMMANDS


def test_services_listen_on_their_port_and_are_dialled_by_their_service_name() -> None:
    deployments, services = by_kind("Deployment"), by_kind("Service")
    (config,) = by_kind("ConfigMap").values()
    for name in SERVICES:
        port = DEFAULT_PORTS[name]
        spec = container(deployments[name])
        assert spec["ports"] == [
            {"name": "grpc", "containerPort": port},
            {"name": "metrics", "containerPort": DEFAULT_METRICS_PORTS[name]},
        ]
        assert spec["readinessProbe"]["grpc"]["port"] == port
        # Listens on every interface of its pod; the others dial the headless Service.
        assert {"name": f"IOT_{name.upper()}_ADDR", "value": f"0.0.0.0:{port}"} in spec["env"]
        assert config["data"][f"IOT_{name.upper()}_ADDR"] == f"{name}:{port}"
        service = services[name]["spec"]
        assert service["clusterIP"] == "None", "round_robin needs every pod's address"
        assert service["ports"][0]["port"] == port
        assert service["selector"] == deployments[name]["spec"]["selector"]["matchLabels"]
    assert config["data"]["IOT_GATEWAY_PORT"] == "8080"
    assert container(deployments["gateway"])["ports"][0]["containerPort"] == 8080


def test_every_process_serves_metrics_where_its_pod_says() -> None:
    (config,) = by_kind("ConfigMap").values()
    for name, deployment in by_kind("Deployment").items():
        port = DEFAULT_METRICS_PORTS[name]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }
        assert {"name": "metrics", "containerPort": port} in container(deployment)["ports"]
        assert config["data"][metrics_variable(name)] == f"0.0.0.0:{port}"


def test_every_deployment_has_a_budget_requests_and_probes() -> None:
    budgets = by_kind("PodDisruptionBudget")
    scaled = {
        hpa["spec"]["scaleTargetRef"]["name"] for hpa in by_kind("HorizontalPodAutoscaler").values()
    }
    assert scaled == {"telemetry", "gateway"}
    for name, deployment in by_kind("Deployment").items():
        spec = container(deployment)
        assert {"cpu", "memory"} <= set(spec["resources"]["requests"])
        assert "readinessProbe" in spec and "livenessProbe" in spec
        assert budgets[name]["spec"]["selector"] == deployment["spec"]["selector"]


def manifest_variables() -> set[str]:
    """The variables the manifests give a process: the ConfigMap's, the Secret's, and
    each container's own."""
    named: set[str] = set()
    for resource in resources(BASE):
        if resource["kind"] in ("ConfigMap", "Secret"):
            named |= set(resource.get("data", {})) | set(resource.get("stringData", {}))
        for spec in (
            resource.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            named |= {env["name"] for env in spec.get("env", [])}
    return named


def compose_variables() -> set[str]:
    """The variables docker-compose.yml gives a process (its ``environment`` keys)."""
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {
        name
        for service in document["services"].values()
        for name in service.get("environment", {})
        if name.startswith("IOT_")
    }


@pytest.mark.parametrize("named", [manifest_variables, compose_variables], ids=["k8s", "compose"])
def test_every_variable_given_is_in_the_configuration_table(named: Any) -> None:
    variables = named()
    assert "IOT_DATABASE_URL" in variables and "IOT_SECRET_KEY" in variables
    assert variables - readme_variables() == set()


def test_the_variable_check_can_fail() -> None:
    assert {"IOT_NO_SUCH_SETTING", "IOT_ENV"} - readme_variables() == {"IOT_NO_SUCH_SETTING"}
