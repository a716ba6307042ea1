"""The container files and Kubernetes manifests are valid without a cluster."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

CONTAINER = Path(__file__).resolve().parents[2] / "container"
MANIFESTS = sorted((CONTAINER / "k8s").glob("*.yaml"))


def test_there_are_manifests() -> None:
    kinds = {yaml.safe_load(path.read_text())["kind"] for path in MANIFESTS}
    assert kinds >= {
        "StatefulSet",
        "Secret",
        "Service",
        "PodDisruptionBudget",
        "ConfigMap",
    }


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_kubernetes_schema(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        # strict: unknown fields are errors, as kubectl --validate=strict does.
        kubernetes_validate.validate(document, "1.33.0", strict=True)


def test_statefulset_probes_and_limits() -> None:
    sts = yaml.safe_load((CONTAINER / "k8s" / "statefulset.yaml").read_text())
    [container] = sts["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"requests", "limits"} <= set(container["resources"])
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    env_names = {item["name"] for item in container["env"]}
    assert "POD_NAME" in env_names


def test_compose_file_shape() -> None:
    compose = yaml.safe_load((CONTAINER / "compose.yaml").read_text())
    assert set(compose["services"]) == {"db", "bot"}
    assert "healthcheck" in compose["services"]["db"]
    assert (
        compose["services"]["bot"]["depends_on"]["db"]["condition"] == "service_healthy"
    )
    for name in compose["services"]["bot"]["secrets"]:
        assert name in compose["secrets"]


def test_containerfile_is_multi_stage_and_non_root() -> None:
    text = (CONTAINER / "Containerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2
    final_stage = text.rsplit("\nFROM ", 1)[1]
    assert "\nUSER 10001" in final_stage
    assert "gcc" not in final_stage and "build-essential" not in final_stage


def test_validator_rejects_a_broken_manifest() -> None:
    sts = yaml.safe_load((CONTAINER / "k8s" / "statefulset.yaml").read_text())
    sts["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, "1.33.0", strict=True)
    sts["spec"]["replicas"] = 2
    sts["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, "1.33.0", strict=True)
