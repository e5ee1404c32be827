"""deploy/ checked without a container engine: Kubernetes objects against the Kubernetes schemas
(strict), the compose file through a spec-compliant Compose parser, KEDA objects against the
rules the scaling relies on, and both against the secure defaults (locked-down containers, a
network policy, pinned images, no placeholder Secret, loopback-only ports, a bucket-scoped store
user)."""

import base64
import copy
import json
import re
import shutil
import subprocess
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
    from alertanim.agents.topology import WORKER_STAGES

    covered = []
    for dep in by_kind("Deployment"):
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        covered += args[args.index("--stages") + 1].split(",")
    assert sorted(covered) == sorted(WORKER_STAGES)
    assert by_kind("Job")[0]["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics"]


class MissingVariable(ValueError):
    """What docker compose stops with when a ${VAR:?message} variable is unset or empty."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
    ${VAR?error}; $$ is a literal $."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op == ":?" and not value or op == "?" and value is None:
            raise MissingVariable(f"{name}: {arg}")
        return value or ""
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", sub, text)


# What an operator exports before `docker compose up` (the file requires them).
COMPOSE_ENV = {"MINIO_ROOT_PASSWORD": "root-password-0", "ALERTANIM_S3_ACCESS_KEY_ID": "worker-key",
               "ALERTANIM_S3_SECRET_ACCESS_KEY": "worker-secret-0"}


def compose_text() -> str:
    return (DEPLOY / "compose.yaml").read_text()


def load_compose(env: dict[str, str] | None = None) -> dict:
    # As docker compose does: substitute variables, then YAML resolves anchors and merge keys.
    return yaml.safe_load(interpolate(compose_text(), COMPOSE_ENV if env is None else env))


def test_compose_file_follows_the_compose_spec():
    from compose_spec import PyCompose

    text = interpolate(compose_text(), COMPOSE_ENV)
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


# --- Secure defaults: Kubernetes ------------------------------------------------------------------
#
# Each check returns the problems it finds, so the same check runs on the committed manifests,
# on kustomize's rendering of them, and on deliberately broken copies (which it must reject).

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
WRITABLE_ENV = ("HOME", "TMPDIR", "XDG_CACHE_HOME", "HF_HOME", "TORCHINDUCTOR_CACHE_DIR",
                "TRITON_CACHE_DIR")
PLACEHOLDER = re.compile(r"change.?me|replace.?me|placeholder|example|dummy|todo|fixme|^x+$|"
                         r"^<.*>$|^(secret|password|admin)$", re.I)
K8S_COMMENTS = "\n".join(p.read_text() for p in sorted(K8S.glob("*.yaml")))


def workloads(docs):
    """(kind/name, pod spec, pod labels) of every object that runs pods."""
    out = []
    for doc in docs:
        if doc["kind"] not in POD_KINDS:
            continue
        if doc["kind"] == "Pod":
            template = doc
        elif doc["kind"] == "CronJob":
            template = doc["spec"]["jobTemplate"]["spec"]["template"]
        else:
            template = doc["spec"]["template"]
        labels = (template.get("metadata") or {}).get("labels") or {}
        out.append((f"{doc['kind']}/{doc['metadata']['name']}", template["spec"], labels))
    return out


def all_containers(spec):
    return [*spec.get("initContainers", []), *spec["containers"]]


def pod_security_problems(docs) -> list[str]:
    problems = []
    for name, spec, _ in workloads(docs):
        pod_sc = spec.get("securityContext") or {}
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: automountServiceAccountToken is not false")
        if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: pod seccompProfile is not RuntimeDefault")
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            problems.append(f"{name}: shares a host namespace")
        for c in all_containers(spec):
            where = f"{name}/{c['name']}"
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []) or caps.get("add"):
                problems.append(f"{where}: capabilities are not drop [ALL]")
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0 or sc.get("privileged"):
                problems.append(f"{where}: runs as root or privileged")
            if (sc.get("seccompProfile") or {}).get("type") not in (None, "RuntimeDefault"):
                problems.append(f"{where}: overrides the pod's seccomp profile")
    return problems


def under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def writable_dir_problems(docs) -> list[str]:
    """A read-only root filesystem needs /tmp, the working directory and every cache directory the
    settings point at on a writable emptyDir."""
    configmaps = {d["metadata"]["name"]: d.get("data") or {}
                  for d in docs if d["kind"] == "ConfigMap"}
    problems = []
    for name, spec, _ in workloads(docs):
        empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in all_containers(spec):
            where = f"{name}/{c['name']}"
            writable = [m["mountPath"] for m in c.get("volumeMounts", [])
                        if m["name"] in empty_dirs and not m.get("readOnly")]
            env = {}
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(configmaps.get(source["configMapRef"]["name"], {}))
            env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
            if "/tmp" not in writable:
                problems.append(f"{where}: no writable emptyDir at /tmp")
            for var in WRITABLE_ENV:
                if var not in env:
                    problems.append(f"{where}: {var} is not set")
                elif not under(env[var], writable):
                    problems.append(f"{where}: {var}={env[var]} is not on a writable emptyDir")
            workdir = c.get("workingDir")
            if not workdir or not under(workdir, writable):
                problems.append(f"{where}: working directory {workdir} is not writable")
    return problems


def selects(policy, labels) -> bool:
    selector = policy["spec"].get("podSelector") or {}
    if selector.get("matchExpressions"):
        return False  # not used here; a policy that needs them is not counted
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def port_of(url: str, default: int) -> int:
    m = re.search(r":(\d+)(?:/|$)", url.split("://", 1)[-1])
    return int(m.group(1)) if m else default


def network_policy_problems(docs) -> list[str]:
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    settings = next((d["data"] for d in docs if d["kind"] == "ConfigMap"), {})
    problems = []
    if not any(not (p["spec"].get("podSelector") or {})
               and "Ingress" in p["spec"].get("policyTypes", [])
               and not p["spec"].get("ingress") for p in policies):
        problems.append("no default-deny ingress policy for the namespace")
    for name, _, labels in workloads(docs):
        mine = [p for p in policies if selects(p, labels) and p["spec"].get("podSelector")]
        if not any("Egress" in p["spec"].get("policyTypes", []) for p in mine):
            problems.append(f"{name}: no policy limits its egress")
        if not any("Ingress" in p["spec"].get("policyTypes", []) for p in mine):
            problems.append(f"{name}: no policy covers its ingress")
    egress_ports = set()
    for p in policies:
        pname = p["metadata"]["name"]
        for rule in p["spec"].get("ingress", []):
            ports = rule.get("ports") or []
            if not ports or any(port.get("port") not in (6066, "web") for port in ports):
                problems.append(f"{pname}: ingress allowed on ports other than 6066")
            peers = rule.get("from") or []
            if not peers:
                problems.append(f"{pname}: ingress from anywhere")
            for peer in peers:
                if "ipBlock" in peer or ("namespaceSelector" in peer and
                                         not (peer.get("podSelector") or {}).get("matchLabels")):
                    problems.append(f"{pname}: ingress from outside the namespace's pods "
                                    f"and the monitoring pods: {peer}")
        for rule in p["spec"].get("egress", []):
            ports = rule.get("ports") or []
            if not ports or not rule.get("to"):
                problems.append(f"{pname}: egress to any port or any destination")
            egress_ports |= {port.get("port") for port in ports}
    needed = {53}
    if settings.get("ALERTANIM_BROKER"):
        needed |= {port_of(b, 9092) for b in settings["ALERTANIM_BROKER"].split(";")}
    if settings.get("ALERTANIM_S3_ENDPOINT_URL"):
        url = settings["ALERTANIM_S3_ENDPOINT_URL"]
        needed.add(port_of(url, 443 if url.startswith("https") else 80))
    if policies and needed - egress_ports:
        problems.append(f"egress does not reach DNS, Kafka and S3: ports {needed - egress_ports}")
    return problems


def resolve_image(image: str, kust_images) -> str:
    """The image kustomize's `images:` transformer writes for a container's image."""
    name = re.split(r"@|:(?=[^/]*$)", image)[0]
    for entry in kust_images or []:
        if entry["name"] == name:
            new = entry.get("newName", name)
            if entry.get("digest"):
                return f"{new}@{entry['digest']}"
            if "newTag" in entry:
                return f"{new}:{entry['newTag']}"
            return new + image[len(name):]
    return image


def image_problems(images) -> list[str]:
    problems = []
    for image in images:
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else ""
        if not tag or tag == "latest":
            problems.append(f"image {image} is not pinned to a version tag or digest")
    return problems


def container_images(docs, kust_images=None):
    return [resolve_image(c["image"], kust_images) for _, spec, _ in workloads(docs)
            for c in all_containers(spec)]


def secret_problems(docs, kust) -> list[str]:
    problems = []
    for doc in docs:
        if doc["kind"] != "Secret":
            continue
        values = dict(doc.get("stringData") or {})
        for key, value in (doc.get("data") or {}).items():
            values[key] = base64.b64decode(value).decode(errors="replace")
        for key, value in values.items():
            if not str(value).strip() or PLACEHOLDER.search(str(value)):
                problems.append(f"Secret/{doc['metadata']['name']}: {key} holds a placeholder")
    for gen in kust.get("secretGenerator", []):
        if gen.get("literals"):
            problems.append(f"secretGenerator {gen['name']}: literal values are committed")
    return problems


def test_every_container_is_locked_down():
    _, docs = kustomize_docs()
    assert len(workloads(docs)) >= 5
    assert pod_security_problems(docs) == []


def test_read_only_root_filesystem_leaves_tmp_and_the_caches_writable():
    _, docs = kustomize_docs()
    assert writable_dir_problems(docs) == []


def test_pods_use_their_own_service_account_without_a_token():
    _, docs = kustomize_docs()
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    for name, spec, _ in workloads(docs):
        account = accounts.get(spec.get("serviceAccountName"))
        assert account is not None, f"{name} runs as the namespace's default ServiceAccount"
        assert account["automountServiceAccountToken"] is False
    assert not [d for d in docs if d["kind"] in {"RoleBinding", "ClusterRoleBinding"}]


def test_namespace_enforces_the_restricted_pod_security_standard():
    [ns] = by_kind("Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_network_policy_denies_ingress_and_covers_every_pod():
    _, docs = kustomize_docs()
    assert network_policy_problems(docs) == []
    assert len(by_kind("NetworkPolicy")) >= 2


def test_images_are_pinned():
    kust, docs = kustomize_docs()
    images = container_images(docs, kust.get("images"))
    assert images and image_problems(images) == []
    assert {i.rsplit(":", 1)[0] for i in images} == {"alertanim"}


def test_no_placeholder_secret_is_applied_and_the_referenced_one_is_documented():
    kust, docs = kustomize_docs()
    assert secret_problems(docs, kust) == []
    defined = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    defined |= {g["name"] for g in kust.get("secretGenerator", [])}
    referenced = set()
    for _, spec, _ in workloads(docs):
        for c in all_containers(spec):
            referenced |= {s["secretRef"]["name"] for s in c.get("envFrom", []) if "secretRef" in s}
            referenced |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                           if "secretKeyRef" in e.get("valueFrom", {})}
    assert referenced, "the workers read the object-store keys from a Secret"
    for name in referenced - defined:
        assert re.search(rf"create secret generic {re.escape(name)}\b", K8S_COMMENTS), \
            f"the Secret {name} is neither in the kustomization nor documented for the operator"


def kustomize_command():
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(K8S)]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize", str(K8S)]
    return None


def test_the_kustomize_rendering_is_secure():
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed")
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert {d["kind"] for d in docs} >= {"Deployment", "Job", "NetworkPolicy", "ServiceAccount"}
    assert pod_security_problems(docs) == []
    assert writable_dir_problems(docs) == []
    assert network_policy_problems(docs) == []
    assert image_problems(container_images(docs)) == []
    assert secret_problems(docs, {}) == []
    assert all(d["metadata"].get("namespace") == "alertanim"
               for d in docs if d["kind"] != "Namespace")


# --- Secure defaults: compose ---------------------------------------------------------------------

def port_problems(compose) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        if service.get("network_mode") == "host":
            problems.append(f"{name}: host network")
        for port in service.get("ports", []):
            if isinstance(port, dict):
                ok = port.get("host_ip") == "127.0.0.1" and "published" in port
            else:
                ok = str(port).startswith("127.0.0.1:") and str(port).count(":") == 2
            if not ok:
                problems.append(f"{name}: port {port} is not bound to 127.0.0.1")
    return problems


def compose_image_problems(compose) -> list[str]:
    return image_problems([s["image"] for s in compose["services"].values()]) + [
        f"{n}: no image" for n, s in compose["services"].items() if "image" not in s]


def root_password_problems(raw) -> list[str]:
    """raw: the compose file before substitution. Every MINIO_ROOT_PASSWORD is required (:?)."""
    problems = []
    for name, service in raw["services"].items():
        env = service.get("environment") or {}
        value = env.get("MINIO_ROOT_PASSWORD") if isinstance(env, dict) else None
        if value is not None and not re.fullmatch(r"\$\{MINIO_ROOT_PASSWORD:\?[^}]+\}", str(value)):
            problems.append(f"{name}: MINIO_ROOT_PASSWORD is {value!r}, not required")
    minio_env = raw["services"].get("minio", {}).get("environment") or {}
    if "MINIO_ROOT_PASSWORD" not in minio_env:
        problems.append("minio: no MINIO_ROOT_PASSWORD")
    return problems


def worker_credential_problems(raw, compose) -> list[str]:
    """The services that use the store hold the init service's scoped user, never MinIO's root."""
    problems = []
    root = compose["services"]["minio"]["environment"]
    init_env = compose["services"]["minio-init"]["environment"]
    users = [n for n, s in compose["services"].items()
             if "ALERTANIM_S3_ACCESS_KEY_ID" in (s.get("environment") or {})
             or s.get("environment", {}).get("ALERTANIM_STORE") == "s3"]
    if not users:
        problems.append("no service uses the object store")
    for name in users:
        env = compose["services"][name]["environment"]
        raw_env = raw["services"][name]["environment"]
        for var, scoped, root_var in (
                ("ALERTANIM_S3_ACCESS_KEY_ID", "S3_ACCESS_KEY_ID", "MINIO_ROOT_USER"),
                ("ALERTANIM_S3_SECRET_ACCESS_KEY", "S3_SECRET_ACCESS_KEY", "MINIO_ROOT_PASSWORD")):
            if "MINIO_ROOT" in str(raw_env.get(var)):
                problems.append(f"{name}: {var} comes from MinIO's root credentials")
            if not re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", str(raw_env.get(var))):
                problems.append(f"{name}: {var} has a default or is not from the environment")
            if env.get(var) != init_env.get(scoped) or env.get(var) == root.get(root_var):
                problems.append(f"{name}: {var} is not the scoped user's")
        depends = compose["services"][name].get("depends_on") or {}
        condition = (depends.get("minio-init") or {}).get("condition")
        if condition != "service_completed_successfully":
            problems.append(f"{name}: does not wait for minio-init to complete")
    return problems


BUCKET_ACTIONS = {"s3:GetBucketLocation", "s3:ListBucket"}
OBJECT_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}


def init_problems(compose) -> list[str]:
    problems = []
    init = compose["services"].get("minio-init")
    if init is None:
        return ["no minio-init service"]
    if not re.fullmatch(r"minio/mc:RELEASE\.[0-9TZ-]+", init["image"]):
        problems.append(f"minio-init: image {init['image']} is not a pinned minio/mc release")
    command = init.get("command") or []
    script = " ".join(command) if isinstance(command, list) else str(command)
    for step in ("mc mb", "mc anonymous set none", "mc admin policy create", "mc admin user add",
                 "mc admin policy attach"):
        if step not in script:
            problems.append(f"minio-init: does not run `{step}`")
    if re.search(r"anonymous set (public|download|upload)|policy set (public|download)", script):
        problems.append("minio-init: makes the bucket public")
    env = init["environment"]
    if env.get("S3_ACCESS_KEY_ID") in (None, "", env.get("MINIO_ROOT_USER")):
        problems.append("minio-init: the scoped user is missing or is root")
    bucket = env.get("BUCKET")
    workers = [s for s in compose["services"].values()
               if "ALERTANIM_S3_BUCKET" in (s.get("environment") or {})]
    if not workers or any(s["environment"]["ALERTANIM_S3_BUCKET"] != bucket for s in workers):
        problems.append("minio-init: its bucket is not the workers' bucket")
    try:
        policy = json.loads(env["BUCKET_POLICY"])
    except (KeyError, ValueError):
        return problems + ["minio-init: no JSON BUCKET_POLICY"]
    granted = set()
    for st in policy["Statement"]:
        actions, resources = set(st["Action"]), set(st["Resource"])
        if st.get("Effect") != "Allow":
            continue
        granted |= actions
        if extra := actions - BUCKET_ACTIONS - OBJECT_ACTIONS:
            problems.append(f"minio-init: the policy grants {sorted(extra)}")
        if actions & BUCKET_ACTIONS and resources != {f"arn:aws:s3:::{bucket}"}:
            problems.append(f"minio-init: bucket actions on {sorted(resources)}")
        if actions & OBJECT_ACTIONS and resources != {f"arn:aws:s3:::{bucket}/*"}:
            problems.append(f"minio-init: object actions on {sorted(resources)}")
    if granted != BUCKET_ACTIONS | OBJECT_ACTIONS:
        problems.append(f"minio-init: the policy grants {sorted(granted)}")
    return problems


def test_compose_publishes_ports_on_loopback_only():
    compose = load_compose()
    assert any(s.get("ports") for s in compose["services"].values())
    assert port_problems(compose) == []


def test_compose_images_are_pinned():
    assert compose_image_problems(load_compose()) == []


def test_compose_requires_the_minio_root_password():
    raw = yaml.safe_load(compose_text())
    assert root_password_problems(raw) == []
    env = {k: v for k, v in COMPOSE_ENV.items() if k != "MINIO_ROOT_PASSWORD"}
    with pytest.raises(MissingVariable, match="MINIO_ROOT_PASSWORD"):
        load_compose(env)


def test_compose_workers_use_the_scoped_user_not_root():
    raw = yaml.safe_load(compose_text())
    compose = load_compose()
    assert worker_credential_problems(raw, compose) == []
    for var in ("ALERTANIM_S3_ACCESS_KEY_ID", "ALERTANIM_S3_SECRET_ACCESS_KEY"):
        with pytest.raises(MissingVariable, match=var):
            load_compose({k: v for k, v in COMPOSE_ENV.items() if k != var})


def test_compose_init_creates_a_private_bucket_and_a_scoped_user():
    assert init_problems(load_compose()) == []


# --- The checks above do fail --------------------------------------------------------------------

def test_the_security_checks_reject_insecure_manifests():
    kust, docs = kustomize_docs()

    def broken(mutate):
        copy_ = copy.deepcopy(docs)
        mutate(copy_)
        return copy_

    def first_container(ds):
        deployment = next(d for d in ds if d["kind"] == "Deployment")
        return deployment["spec"]["template"]["spec"]["containers"][0]

    def first_pod(ds):
        return next(d for d in ds if d["kind"] == "Job")["spec"]["template"]["spec"]

    assert pod_security_problems(broken(lambda ds: first_container(ds)["securityContext"].pop(
        "readOnlyRootFilesystem")))
    assert pod_security_problems(broken(lambda ds: first_container(ds)["securityContext"].update(
        allowPrivilegeEscalation=True)))
    assert pod_security_problems(broken(lambda ds: first_container(ds)["securityContext"].update(
        capabilities={"drop": ["NET_RAW"]})))
    assert pod_security_problems(broken(lambda ds: first_pod(ds)["securityContext"].pop(
        "seccompProfile")))
    assert pod_security_problems(broken(lambda ds: first_pod(ds).pop(
        "automountServiceAccountToken")))
    assert writable_dir_problems(broken(lambda ds: first_container(ds).update(volumeMounts=[])))
    assert writable_dir_problems(broken(lambda ds: next(d for d in ds if d["kind"] == "ConfigMap")[
        "data"].update(HF_HOME="/opt/hf")))
    assert network_policy_problems([d for d in docs if d["kind"] != "NetworkPolicy"])
    def workers_policy(ds):
        return next(d for d in ds if d["metadata"]["name"] == "alertanim-workers")["spec"]

    assert network_policy_problems(broken(lambda ds: workers_policy(ds)["ingress"][0].update(
        ports=[{"protocol": "TCP", "port": 22}])))
    assert network_policy_problems(broken(lambda ds: workers_policy(ds)["egress"].append({})))
    assert network_policy_problems(broken(lambda ds: workers_policy(ds)["podSelector"].update(
        matchLabels={"app.kubernetes.io/name": "something-else"})))
    assert image_problems(container_images(docs))  # unpinned without the kustomization's images:
    assert image_problems(["alertanim"]) and image_problems(["alertanim:latest"])
    assert image_problems(container_images(docs, [{"name": "alertanim", "newTag": "latest"}]))
    assert not image_problems(["registry:5000/alertanim:0.1.0", "alertanim@sha256:" + "0" * 64])
    placeholder = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "alertanim-secrets"},
                   "stringData": {"ALERTANIM_S3_ACCESS_KEY_ID": "change-me"}}
    assert secret_problems([*docs, placeholder], kust)
    encoded = {**placeholder, "stringData": None,
               "data": {"KEY": base64.b64encode(b"changeme").decode()}}
    assert secret_problems([*docs, encoded], kust)
    assert secret_problems(docs, {"secretGenerator": [{"name": "s", "literals": ["K=v"]}]})


def test_the_security_checks_reject_an_insecure_compose_file():
    raw = yaml.safe_load(compose_text())
    compose = load_compose()

    def broken(doc, mutate):
        copy_ = copy.deepcopy(doc)
        mutate(copy_["services"])
        return copy_

    assert port_problems(broken(compose, lambda s: s["kafka"].update(ports=["9092:9092"])))
    assert port_problems(broken(compose, lambda s: s["minio"].update(ports=["0.0.0.0:9001:9001"])))
    assert port_problems(broken(compose, lambda s: s["minio"].update(ports=["9001"])))
    assert compose_image_problems(broken(compose, lambda s: s["minio"].update(
        image="minio/minio:latest")))
    assert compose_image_problems(broken(compose, lambda s: s["minio-init"].update(
        image="minio/mc")))
    assert root_password_problems(broken(raw, lambda s: s["minio"]["environment"].update(
        MINIO_ROOT_PASSWORD="${MINIO_ROOT_PASSWORD:-alertanim-secret}")))
    # The workers given MinIO's root credentials, as an operator might be tempted to.
    scoped = ("ALERTANIM_S3_ACCESS_KEY_ID: "
              "${ALERTANIM_S3_ACCESS_KEY_ID:?set ALERTANIM_S3_ACCESS_KEY_ID}")
    assert compose_text().count(scoped) == 1
    text = compose_text().replace(scoped, "ALERTANIM_S3_ACCESS_KEY_ID: ${MINIO_ROOT_USER:-admin}")
    assert worker_credential_problems(yaml.safe_load(text),
                                      yaml.safe_load(interpolate(text, COMPOSE_ENV)))
    assert worker_credential_problems(raw, broken(compose, lambda s: s["ingest"]["depends_on"].pop(
        "minio-init")))
    assert init_problems(broken(compose, lambda s: s["minio-init"]["environment"].update(
        BUCKET_POLICY=json.dumps({"Statement": [{"Effect": "Allow", "Action": ["s3:*"],
                                                 "Resource": ["arn:aws:s3:::*"]}]}))))
    assert init_problems(broken(compose, lambda s: s["minio-init"].update(
        command=[s["minio-init"]["command"][0].replace("set none", "set public")])))
    assert init_problems(broken(compose, lambda s: s["minio-init"].update(image="minio/mc:latest")))


# --- Least privilege on Kafka: the ACL table (alertanim.agents.acls) is what deploy/ ships -----

# The Kafka logins compose requires, one per role and client, as an operator exports them.
KAFKA_PASSWORD_VARS = {name: f"ALERTANIM_KAFKA_{name.upper()}_PASSWORD"
                       for name in ("ingest", "generate", "sample", "animate", "producer",
                                    "watcher")}
COMPOSE_ENV.update({var: f"kafka-{name}-pw-0" for name, var in KAFKA_PASSWORD_VARS.items()})


def acl_table(**kw):
    from alertanim.agents import acls
    from alertanim.agents.settings import Settings

    return {g.name: g for g in acls.deployment(Settings(), **kw)}


def test_the_acl_table_keeps_each_role_to_its_own():
    from alertanim.agents import acls
    from alertanim.agents.settings import Settings
    from alertanim.agents.topology import WORKER_STAGES, all_topics

    s = Settings()
    table = acl_table()
    roles = [table[r] for r in acls.ROLES]
    assert sorted(st for g in roles for st in g.stages) == sorted(WORKER_STAGES)
    inputs = [t for g in roles for t in acls.inputs(s, g.stages)]
    assert len(inputs) == len(set(inputs)) == len(WORKER_STAGES)  # each input read by one role
    for g in roles:
        assert set(g.write) <= set(all_topics(s)) and s.topic_alerts not in g.write
        for other in roles:  # another role is handed its alerts at its first input only
            theirs = acls.inputs(s, other.stages)
            if other is not g:
                assert set(g.write) & set(theirs) <= {theirs[0]}
        assert g.groups == (f"{s.app_id}-{g.name}",) and g.principal == g.groups[0]
        assert all(p.startswith(f"{g.groups[0]}.emit.") for p in g.transactional_prefixes)
    # a stage topic is written by the role before it only; ready by the ends of the pipeline
    for topic in all_topics(s):
        writers = {g.name for g in roles if topic in g.write}
        if topic == s.topic_failed:
            assert writers == set(acls.ROLES)
        elif topic in (s.topic_ready, s.topic_cap):
            assert writers == {"ingest", "animate"}
        elif topic == s.topic_alerts:
            assert writers == set()
        else:
            assert len(writers) == 1, (topic, writers)
    prefixes = [p for g in roles for p in g.transactional_prefixes]
    assert not [(a, b) for a in prefixes for b in prefixes if a != b and b.startswith(a)]
    assert table["producer"].write == (s.topic_alerts,) and not table["producer"].read
    assert set(table["watcher"].read) == {s.topic_ready, s.topic_failed}
    assert not table["watcher"].write
    with pytest.raises(ValueError, match="share a consumer group"):
        acls.deployment(s, app_ids={"ingest": "one", "generate": "one"})
    # without the status page, a role reads its inputs (and the last one ready) only
    quiet = acl_table(status_page=False)
    assert all(not quiet[r].follow for r in acls.ROLES)
    assert set(quiet["generate"].read) == {s.stage_topic("generate"), s.stage_topic("score"),
                                           acls.leader_topic("alertanim-generate")}


def compose_kafka_problems(compose) -> list[str]:
    """The broker authorizes every request, and other containers reach it only over SASL."""
    problems = []
    env = compose["services"]["kafka"]["environment"]
    if env.get("KAFKA_AUTHORIZER_CLASS_NAME") != (
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer"):
        problems.append("kafka: no StandardAuthorizer")
    if str(env.get("KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND")).lower() != "false":
        problems.append("kafka: everyone is allowed where no ACL is found")
    if env.get("KAFKA_SUPER_USERS") != "User:ANONYMOUS":
        problems.append(f"kafka: super users {env.get('KAFKA_SUPER_USERS')!r}")
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    for listener in env["KAFKA_LISTENERS"].split(","):
        name, address = listener.split("://")
        host = address.rsplit(":", 1)[0]
        if protocols.get(name) != "SASL_PLAINTEXT" and host not in ("localhost", "127.0.0.1"):
            problems.append(f"kafka: {listener} ({protocols.get(name)}) is reachable from "
                            "other containers")
    for voter in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(","):
        if voter.split("@")[1].rsplit(":", 1)[0] not in ("localhost", "127.0.0.1"):
            problems.append(f"kafka: controller {voter} is reachable from other containers")
    for name, service in compose["services"].items():
        senv = service.get("environment") or {}
        if service.get("network_mode") == "service:kafka" and name not in ("kafka-acls",
                                                                           "topics"):
            problems.append(f"{name}: shares the broker's network (its super user's listener)")
        if "kafka:9092" in str(senv.get("ALERTANIM_BROKER", "")):
            if senv.get("ALERTANIM_SECURITY_PROTOCOL") != "SASL_PLAINTEXT" or \
                    senv.get("ALERTANIM_SASL_MECHANISM") != "SCRAM-SHA-512":
                problems.append(f"{name}: does not log in with SCRAM")
            if not senv.get("ALERTANIM_SASL_USERNAME"):
                problems.append(f"{name}: no Kafka user of its own")
    return problems


def test_compose_kafka_authorizes_every_request_and_takes_other_containers_over_sasl_only():
    compose = load_compose()
    assert compose_kafka_problems(compose) == []

    def broken(mutate):
        copy_ = copy.deepcopy(compose)
        mutate(copy_["services"])
        return compose_kafka_problems(copy_)

    assert broken(lambda s: s["kafka"]["environment"].update(
        KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND="true"))
    assert broken(lambda s: s["kafka"]["environment"].pop("KAFKA_AUTHORIZER_CLASS_NAME"))
    assert broken(lambda s: s["kafka"]["environment"].update(
        KAFKA_LISTENERS="CLIENTS://:9092,ADMIN://:9094,CONTROLLER://localhost:9093"))
    assert broken(lambda s: s["kafka"]["environment"].update(
        KAFKA_SUPER_USERS="User:ANONYMOUS;User:alertanim-ingest"))
    assert broken(lambda s: s["watcher"].update(network_mode="service:kafka"))
    assert broken(lambda s: s["ingest"]["environment"].pop("ALERTANIM_SASL_USERNAME"))


def test_compose_kafka_acls_service_makes_the_tables_users_and_acls():
    from alertanim.agents import acls

    raw = yaml.safe_load(compose_text())
    compose = load_compose()
    table = acl_table()
    service = compose["services"]["kafka-acls"]
    assert service["image"] == compose["services"]["kafka"]["image"]
    assert service["network_mode"] == "service:kafka"
    assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
    [script] = service["command"]
    # the ACLs: exactly the table's, in its order (python -m alertanim.agents.acls script)
    assert acls.commands(script) == [args for g in table.values()
                                     for args in acls.acl_command_args(g)]
    # a SCRAM user for each principal of the table, with the password its service logs in with
    users = dict(re.findall(r"--entity-name (\S+) \\\s+--add-config "
                            r"\"SCRAM-SHA-512=\[password=\$\$\{(\w+)\}\]\"",
                            raw["services"]["kafka-acls"]["command"][0]))
    assert users == {g.principal: KAFKA_PASSWORD_VARS[name] for name, g in table.items()}
    for var in KAFKA_PASSWORD_VARS.values():
        assert raw["services"]["kafka-acls"]["environment"][var] == f"${{{var}:?set {var}}}"
    # each role's service runs the table's stages as its principal, in its group
    clients = {"producer": "producer", "watcher": "watcher"}
    for name, grant in table.items():
        service = compose["services"][clients.get(name, name)]
        env = service["environment"]
        raw_env = raw["services"][clients.get(name, name)]["environment"]
        assert env["ALERTANIM_SASL_USERNAME"] == grant.principal
        var = KAFKA_PASSWORD_VARS[name]
        assert raw_env["ALERTANIM_SASL_PASSWORD"] == f"${{{var}:?set {var}}}"
        assert service["depends_on"]["kafka-acls"]["condition"] == "service_completed_successfully"
        if grant.stages:
            command = service["command"]
            assert command[command.index("--stages") + 1] == ",".join(grant.stages)
            assert command[command.index("--app-id") + 1] == grant.groups[0]
    with pytest.raises(MissingVariable, match="ALERTANIM_KAFKA_SAMPLE_PASSWORD"):
        load_compose({k: v for k, v in COMPOSE_ENV.items()
                      if k != "ALERTANIM_KAFKA_SAMPLE_PASSWORD"})


def test_kubernetes_acl_job_applies_the_table_and_each_role_logs_in_as_its_principal():
    from alertanim.agents import acls

    kust, docs = kustomize_docs()
    table = acl_table(scaler=True)
    config = by_kind("ConfigMap")[0]["data"]
    assert config["ALERTANIM_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["ALERTANIM_SASL_MECHANISM"].startswith("SCRAM-")
    assert config["ALERTANIM_SSL_CAFILE"].startswith("/etc/alertanim/kafka-ca/")
    jobs = {j["metadata"]["name"]: j["spec"]["template"]["spec"] for j in by_kind("Job")}
    [job] = jobs["alertanim-acls"]["containers"]
    assert job["image"] == "alertanim"
    assert job["command"] == ["python", "-m", "alertanim.agents.acls"]
    assert job["args"] == ["apply", "--scaler"]
    for spec in (jobs["alertanim-acls"], jobs["alertanim-topics"]):  # as the Kafka admin
        refs = {s["secretRef"]["name"] for s in spec["containers"][0]["envFrom"]
                if "secretRef" in s}
        assert refs == {"alertanim-kafka-admin"}
    scaler_auth = {d["metadata"]["name"]: d for d in docs if d["kind"] == "TriggerAuthentication"}
    for dep in by_kind("Deployment"):
        role = dep["metadata"]["name"].removeprefix("alertanim-")
        grant = table[role]
        [c] = dep["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["ALERTANIM_SASL_USERNAME"] == grant.principal
        assert env["ALERTANIM_APP_ID"] == grant.groups[0]
        assert c["args"][c["args"].index("--stages") + 1] == ",".join(grant.stages)
        refs = [s["secretRef"]["name"] for s in c["envFrom"] if "secretRef" in s]
        assert f"alertanim-kafka-{role}" in refs and "alertanim-kafka-admin" not in refs
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert config["ALERTANIM_SSL_CAFILE"].rsplit("/", 1)[0] in mounts
    for so in by_kind("ScaledObject"):
        [trigger] = so["spec"]["triggers"]
        assert trigger["authenticationRef"]["name"] in scaler_auth
        assert trigger["metadata"]["consumerGroup"] in table["scaler"].describe_groups
        assert trigger["metadata"]["topic"] in table["scaler"].describe
        assert trigger["metadata"]["bootstrapServers"] == config["ALERTANIM_BROKER"].split(
            "://", 1)[1]
    for name in ("alertanim-kafka-admin", "alertanim-kafka-ca", "alertanim-kafka-scaler",
                 *(f"alertanim-kafka-{r}" for r in acls.ROLES)):
        assert re.search(rf"create secret generic {re.escape(name)}\b", K8S_COMMENTS), name
