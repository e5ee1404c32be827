"""deploy/ checked without a container engine: Kubernetes objects against the Kubernetes schemas
(strict), the compose file through a spec-compliant Compose parser, KEDA objects against the
rules the scaling relies on."""

import json
import re
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.31"
GPU_ROLES = {"generate", "sample", "animate"}


def kustomize_docs():
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kust["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            if doc:
                docs.append(doc)
    return kust, docs


def by_kind(kind):
    return [d for d in kustomize_docs()[1] if d["kind"] == kind]


def test_kubernetes_objects_validate_strictly():
    import kubernetes_validate

    checked = 0
    for doc in kustomize_docs()[1]:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked below
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 12


def test_every_role_has_deployment_pdb_and_scaledobject():
    deployments = {d["metadata"]["name"]: d for d in by_kind("Deployment")}
    pdbs = {d["metadata"]["name"] for d in by_kind("PodDisruptionBudget")}
    scaled = {d["metadata"]["name"]: d for d in by_kind("ScaledObject")}
    assert set(deployments) == pdbs == set(scaled)
    assert {n.removeprefix("alertanim-") for n in deployments} == {"ingest"} | GPU_ROLES
    for name, dep in deployments.items():
        role = name.removeprefix("alertanim-")
        [c] = dep["spec"]["template"]["spec"]["containers"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        limits = c["resources"]["limits"]
        assert (limits.get("nvidia.com/gpu") == 1) == (role in GPU_ROLES)
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["ALERTANIM_APP_ID"] == name  # one consumer group per role


def test_keda_scales_on_lag_within_the_partitions():
    config = by_kind("ConfigMap")[0]["data"]
    partitions = int(config["ALERTANIM_PARTITIONS"])
    for so in by_kind("ScaledObject"):
        spec = so["spec"]
        assert spec["scaleTargetRef"]["name"] == so["metadata"]["name"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
        [trigger] = spec["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert meta["consumerGroup"] == so["metadata"]["name"]
        assert int(meta["lagThreshold"]) >= 1
    first = {s["metadata"]["name"]: s["spec"] for s in by_kind("ScaledObject")}
    assert first["alertanim-ingest"]["minReplicaCount"] >= 1
    assert first["alertanim-generate"]["minReplicaCount"] >= 1, "no cold start for the first GPU stage"


def test_topics_job_and_roles_cover_every_stage():
    from agents.topology import STAGES

    covered = []
    for dep in by_kind("Deployment"):
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        covered += args[args.index("--stages") + 1].split(",")
    assert sorted(covered) == sorted(STAGES)
    assert by_kind("Job")[0]["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics"]


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}; $$ is a literal $."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        value = env.get(m.group(1))
        return value if value else (m.group(3) or "")
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", sub, text)


def test_compose_file_follows_the_compose_spec():
    from compose_spec import PyCompose

    # As docker compose does: substitute variables, then YAML resolves anchors and merge keys.
    text = interpolate((DEPLOY / "compose.yaml").read_text(), {})
    compose = PyCompose.from_json(json.dumps(yaml.safe_load(text)))
    compose.validate()
    services = compose.to_dict()["services"]
    assert {"kafka", "minio", "minio-init", "topics", "ingest", "watcher", "producer"} <= set(services)
    for role in GPU_ROLES:
        devices = services[role]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"]
        command = services[role]["command"]
        assert command[command.index("--app-id") + 1] == f"alertanim-{role}"
        assert services[role]["environment"]["ALERTANIM_BROKER"] == "kafka://kafka:9092"
    assert services["kafka"]["image"].startswith("apache/kafka:")


def test_dockerfile_runs_the_worker_as_non_root_with_a_health_check():
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM nvidia/cuda:" in text
    assert "USER alertanim" in text
    assert "HEALTHCHECK" in text and "/ready" in text
    assert 'ENTRYPOINT ["alertanim"]' in text


@pytest.mark.parametrize("path", sorted(p.name for p in K8S.glob("*.yaml")))
def test_every_manifest_is_listed_in_the_kustomization(path):
    kust, _ = kustomize_docs()
    assert path == "kustomization.yaml" or path in kust["resources"]


def test_the_validators_do_reject_mistakes():
    import kubernetes_validate
    from compose_spec import PyCompose

    dep = by_kind("Deployment")[0]
    broken = json.loads(json.dumps(dep))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    with pytest.raises(ValueError):
        PyCompose.from_json(json.dumps({"services": {"a": {"image": "x", "gpus": "lots",
                                                           "restart": "sometimes"}}}))
