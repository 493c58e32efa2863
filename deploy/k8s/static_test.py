"""Static checks of deploy/k8s: every overlay builds, is valid against Kubernetes 1.37's schemas
(kubeconform -strict) and keeps the rules the manifests promise.

The rules, checked on the rendered output (not on the sources): every pod meets the PodSecurity
"restricted" standard and more (read-only root; the user left to the image), has probes on the
services' own /healthz and /readyz, requests and limits; the ConfigMaps hold byte for byte the
Compose stack's files; the NetworkPolicies admit only the paths
deploy/k8s/base/network-policies.yaml names; the prod render names every image as
REGISTRY/cache-platform/NAME@DIGEST with the digests Bazel built.

Schemas: kubernetes-validate's (PyPI, deploy/k8s/requirements_lock.txt) reference their shared
definitions by an https $id, which kubeconform would fetch; this test writes, for each kind it
meets, a standalone schema (the kind's schema with the definitions it reaches inlined), offline.

Inputs, from the BUILD file, in the environment: GO_TOOLS (go_tools.sh, its go.mod and go.sum),
RENDER_SH, DEPLOY_DIR, and PINS (NAME=DIGEST_FILE pairs), lists space-separated.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

KUBERNETES_VERSION = "1.37.0"
TEST_REGISTRY = "127.0.0.1:5000/test"
# kubeconform's schema path template, for the standalone schemas this test writes.
SCHEMA_TEMPLATE = (
    "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/"
    "{{ .ResourceKind }}{{ .KindSuffix }}.json"
)
GO_TOOLS = os.environ["GO_TOOLS"].split()
RENDER_SH = os.environ["RENDER_SH"]
DEPLOY = Path(os.environ["DEPLOY_DIR"])
PINS = os.environ["PINS"].split()
# Who a pod runs as: left to the image's User (numeric, so that runAsNonRoot can be checked).
USER_FIELDS = {"runAsUser", "runAsGroup", "fsGroup", "supplementalGroups"}


def tools_dir() -> Path:
    """Where go_tools.sh put kustomize and kubeconform (built once per machine)."""
    out = subprocess.run(GO_TOOLS, check=True, capture_output=True, text=True, timeout=1800)
    return Path(out.stdout.strip())


def render(
    overlay: str, pins: list[str], env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> str:
    """render.sh's output for deploy/k8s/overlays/OVERLAY, pinned with NAME=DIGEST_FILE pairs."""
    out = subprocess.run(
        [RENDER_SH, *GO_TOOLS, str(DEPLOY / "k8s" / "overlays" / overlay), *pins, *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    return out.stdout


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def schema_file(doc: dict[str, Any]) -> str:
    """kubeconform's file name for a resource's schema: kind-group-version.json, lower case."""
    group, _, version = doc["apiVersion"].rpartition("/")
    suffix = ("-" + group.split(".")[0].lower() if group else "") + "-" + version.lower()
    return doc["kind"].lower() + suffix + ".json"


def standalone_schema(src: Path, definitions: dict[str, Any]) -> dict[str, Any]:
    """The schema at src with every definition it reaches copied into its own $defs."""
    schema = json.loads(src.read_text())
    schema.pop("$id", None)
    needed: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and "#/$defs/" in ref:
                name = ref.split("#/$defs/", 1)[1]
                node["$ref"] = "#/$defs/" + name
                if name not in needed:
                    needed[name] = copy.deepcopy(definitions[name])
                    walk(needed[name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    schema["$defs"] = needed
    return schema


class Kubeconform:
    """kubeconform -strict over YAML text, with standalone schemas staged in a temp dir."""

    def __init__(self, binary: Path, root: Path) -> None:
        self.binary = binary
        self.root = root
        src = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
        self.src = src / f"v{KUBERNETES_VERSION}-local-strict"
        self.dst = root / f"v{KUBERNETES_VERSION}-standalone-strict"
        self.dst.mkdir(parents=True, exist_ok=True)
        self.definitions = json.loads((self.src / "_definitions.json").read_text())["$defs"]

    def run(self, text: str) -> dict[str, Any]:
        """kubeconform's JSON report for the resources in text."""
        for doc in docs(text):
            name = schema_file(doc)
            if not (self.dst / name).exists() and (self.src / name).exists():
                (self.dst / name).write_text(
                    json.dumps(standalone_schema(self.src / name, self.definitions))
                )
        location = f"{self.root}/{SCHEMA_TEMPLATE}"
        proc = subprocess.run(
            [
                str(self.binary),
                "-strict",
                "-summary",
                "-output",
                "json",
                "-kubernetes-version",
                KUBERNETES_VERSION,
                "-schema-location",
                location,
            ],
            input=text,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        report = json.loads(proc.stdout)
        report["exit"] = proc.returncode
        return report


def pod_specs(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        r["metadata"]["name"]: r["spec"]["template"]["spec"]
        for r in resources
        if r["kind"] == "Deployment"
    }


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


@dataclass(frozen=True)
class Rendered:
    """Each overlay's render (dev, prod, and prod pinned to the built digests), the pins
    (name -> digest file) and a kubeconform to check them with."""

    rendered: dict[str, str]
    pins: dict[str, str]
    kubeconform: Kubeconform


@pytest.fixture(scope="module")
def k8s(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    assert PINS, "PINS is empty"
    assert all(re.match(r"^[a-z-]+=", p) for p in PINS), f"PINS must be NAME=DIGEST_FILE: {PINS}"
    return Rendered(
        rendered={
            "dev": render("dev", []),
            "prod": render("prod", []),
            "prod-pinned": render("prod", PINS, {"OCI_REGISTRY": TEST_REGISTRY}),
        },
        pins=dict(p.split("=", 1) for p in PINS),
        kubeconform=Kubeconform(
            tools_dir() / "bin" / "kubeconform", tmp_path_factory.mktemp("schemas")
        ),
    )


@pytest.mark.parametrize("overlay", ["dev", "prod", "prod-pinned"])
def test_every_overlay_is_valid_kubernetes(k8s: Rendered, overlay: str) -> None:
    text = k8s.rendered[overlay]
    report = k8s.kubeconform.run(text)
    summary = report["summary"]
    assert report["exit"] == 0, report["resources"]
    assert summary["invalid"] + summary["errors"] + summary["skipped"] == 0, report["resources"]
    assert summary["valid"] == len(docs(text))


def test_kubeconform_rejects_unknown_fields(k8s: Rendered) -> None:
    # The check above could pass by finding no schema: a typo must fail it.
    bad = k8s.rendered["prod"].replace("readOnlyRootFilesystem", "readOnlyRootFileSystem", 1)
    report = k8s.kubeconform.run(bad)
    assert report["exit"] != 0
    assert report["summary"]["invalid"] == 1, report["resources"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_pods_meet_restricted_and_read_only_root(k8s: Rendered, overlay: str) -> None:
    for name, spec in pod_specs(docs(k8s.rendered[overlay])).items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        # The user is the image's (tools/rules/oci/base/nonroot.bzl): not repeated here.
        assert not USER_FIELDS & pod.keys(), (name, pod)
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for volume in spec.get("volumes", []):
            assert {"configMap", "emptyDir", "secret"} & volume.keys(), (name, volume)
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert not USER_FIELDS & sc.keys(), (name, sc)
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert "privileged" not in sc, name
            assert c["resources"]["requests"].keys() >= {"cpu", "memory"}, name
            assert c["resources"]["limits"].keys() >= {"cpu", "memory"}, name
            assert "readinessProbe" in c, name
            assert "livenessProbe" in c, name
            assert not any("hostPort" in p for p in c.get("ports", [])), name


def test_apps_probe_their_own_health_endpoints(k8s: Rendered) -> None:
    specs = pod_specs(docs(k8s.rendered["prod"]))
    for app in ("go-service", "py-service"):
        c = specs[app]["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert specs["nginx"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert specs["prometheus"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/-/ready"


def test_config_maps_are_the_compose_stacks_files(k8s: Rendered) -> None:
    deploy = DEPLOY
    maps = {
        r["metadata"]["name"].rsplit("-", 1)[0]: r["data"]
        for r in docs(k8s.rendered["prod"])
        if r["kind"] == "ConfigMap"
    }
    assert maps["nginx-config"]["nginx.conf"] == (deploy / "nginx/nginx.conf").read_text()
    for name in ("upstreams.conf", "unlimited-clients.conf"):
        assert maps["nginx-config"][name] == (deploy / "nginx/conf.d" / name).read_text()
    for rules in ("recording.yml", "alerts.yml"):
        assert maps["prometheus-rules"][rules] == (deploy / "prometheus/rules" / rules).read_text()
    prom = yaml.safe_load(maps["prometheus-config"]["prometheus.yml"])
    assert prom["rule_files"] == [
        "/etc/prometheus/rules/recording.yml",
        "/etc/prometheus/rules/alerts.yml",
    ]
    assert prom["scrape_configs"][0]["kubernetes_sd_configs"][0]["role"] == "pod"


def test_nginx_runs_one_worker_per_cpu_of_its_limit(k8s: Rendered) -> None:
    # worker_processes `auto` counts the host's CPUs, not the container's limit: more workers
    # than the quota only take turns on it. The one config serves Compose and every overlay.
    conf = (DEPLOY / "nginx/nginx.conf").read_text()
    workers = re.search(r"^worker_processes (\S+);", conf, re.MULTILINE).group(1)
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    limits = {"compose": float(compose["services"]["nginx"]["cpus"])}
    for overlay in ("dev", "prod"):
        (container,) = pod_specs(docs(k8s.rendered[overlay]))["nginx"]["containers"]
        cpu = str(container["resources"]["limits"]["cpu"])
        limits[overlay] = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    assert {where: math.ceil(cpus) for where, cpus in limits.items()} == dict.fromkeys(
        limits, int(workers) if workers.isdigit() else workers
    )


def test_prometheus_scrapes_every_metrics_port_under_its_compose_job_name(k8s: Rendered) -> None:
    specs = pod_specs(docs(k8s.rendered["prod"]))
    deployments = by_kind(docs(k8s.rendered["prod"]), "Deployment")
    compose_jobs = {
        c["job_name"]
        for c in yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())[
            "scrape_configs"
        ]
    }
    for app, port in (("go-service", 8080), ("py-service", 8000), ("nginx", 9145)):
        annotations = deployments[app]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == port
        assert port in [p["containerPort"] for p in specs[app]["containers"][0]["ports"]]
        assert app in compose_jobs  # the job label the rules use


def test_network_policies(k8s: Rendered) -> None:
    policies = by_kind(docs(k8s.rendered["prod"]), "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}

    def sources(rule: dict[str, Any]) -> list[Any]:
        return [f["podSelector"] for f in rule.get("from", [])]

    apps = policies["apps"]["spec"]
    assert apps["podSelector"]["matchExpressions"][0]["values"] == ["go-service", "py-service"]
    assert sources(apps["ingress"][0]) == [
        {"matchLabels": {"app.kubernetes.io/name": "nginx"}},
        {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    ]
    redis = policies["redis"]["spec"]
    assert len(redis["ingress"]) == 1
    assert sources(redis["ingress"][0])[0]["matchExpressions"][0]["values"] == [
        "go-service",
        "py-service",
    ]
    nginx = policies["nginx"]["spec"]["ingress"]
    assert nginx[0] == {"ports": [{"port": "http"}]}  # the entry point: anyone
    assert sources(nginx[1]) == [{"matchLabels": {"app.kubernetes.io/name": "prometheus"}}]
    assert nginx[1]["ports"] == [{"port": "metrics"}]
    # Each pod has an allow rule, but Prometheus: only the deny selects it (no ingress).
    selected = {"nginx", "go-service", "py-service", "redis"}
    assert set(pod_specs(docs(k8s.rendered["prod"]))) - selected == {"prometheus"}


def test_go_service_scales_within_a_disruption_budget(k8s: Rendered) -> None:
    prod = docs(k8s.rendered["prod"])
    hpa = by_kind(prod, "HorizontalPodAutoscaler")["go-service"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "go-service",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    assert by_kind(prod, "Deployment")["go-service"]["spec"]["replicas"] == 3
    assert by_kind(prod, "PodDisruptionBudget")["go-service"]["spec"]["minAvailable"] == 2
    assert (
        by_kind(prod, "Namespace")["cache-platform"]["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ]
        == "restricted"
    )


def test_prod_render_pins_every_image_to_what_bazel_built(k8s: Rendered) -> None:
    images = {}
    for name, spec in pod_specs(docs(k8s.rendered["prod-pinned"])).items():
        for c in spec["containers"]:
            images[name] = c["image"]
    assert set(images) == set(k8s.pins)
    for name, image in images.items():
        digest = Path(k8s.pins[name]).read_text().strip()
        assert re.search(r"^sha256:[0-9a-f]{64}$", digest)
        assert image == f"{TEST_REGISTRY}/cache-platform/{name}@{digest}"
    # The unpinned render names the local tags only.
    for spec in pod_specs(docs(k8s.rendered["prod"])).values():
        assert re.search(r"^cache-platform/[a-z-]+:dev$", spec["containers"][0]["image"])


def gitops(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "k8s/gitops" / name).read_text())


def api_group(resource: dict[str, Any]) -> str:
    """The API group of a resource ("" for the core group)."""
    return resource["apiVersion"].rpartition("/")[0]


def test_argo_cd_applies_what_cd_renders() -> None:
    app = gitops("application.yaml")
    assert app["kind"] == "Application"
    assert app["spec"]["source"]["path"] == "deploy/k8s/clusters/prod"
    assert app["spec"]["destination"]["namespace"] == "cache-platform"
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_argo_cd_project_admits_this_repo_namespace_and_the_rendered_kinds_only(
    k8s: Rendered,
) -> None:
    # The default project admits any repository, namespace and kind: automated prune and
    # self-heal are bounded only by the project the Application names.
    app, project = gitops("application.yaml"), gitops("appproject.yaml")
    assert project["kind"] == "AppProject"
    assert app["spec"]["project"] == project["metadata"]["name"] != "default"
    spec = project["spec"]
    assert spec["sourceRepos"] == [app["spec"]["source"]["repoURL"]]
    assert spec["destinations"] == [app["spec"]["destination"]]
    namespace = app["spec"]["destination"]["namespace"]

    rendered = docs(k8s.rendered["prod-pinned"])
    namespaced = [r for r in rendered if "namespace" in r["metadata"]]
    cluster_scoped = [r for r in rendered if "namespace" not in r["metadata"]]
    assert {r["metadata"]["namespace"] for r in namespaced} == {namespace}
    allowed = spec["namespaceResourceWhitelist"] + spec["clusterResourceWhitelist"]
    assert not [rule for rule in allowed if "*" in "".join(rule.values())], "no wildcards"
    assert {(rule["group"], rule["kind"]) for rule in spec["namespaceResourceWhitelist"]} == {
        (api_group(r), r["kind"]) for r in namespaced
    }, "the project's namespaced kinds must be those the prod overlay renders"
    assert {
        (rule["group"], rule["kind"], rule.get("name")) for rule in spec["clusterResourceWhitelist"]
    } == {(api_group(r), r["kind"], r["metadata"]["name"]) for r in cluster_scoped}
    # Pruning a Namespace deletes everything in it: Argo CD never prunes this one.
    for r in cluster_scoped:
        annotations = r["metadata"].get("annotations", {})
        assert annotations.get("argocd.argoproj.io/sync-options") == "Prune=false", r["kind"]


@pytest.mark.parametrize("registry", ["", "https://registry.example", "Registry.Example"])
def test_render_refuses_a_missing_or_bad_registry(registry: str) -> None:
    proc = subprocess.run(
        [RENDER_SH, *GO_TOOLS, str(DEPLOY / "k8s/overlays/prod"), *PINS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "OCI_REGISTRY": registry},
    )
    assert proc.returncode == 2
    assert "OCI_REGISTRY" in proc.stderr
    assert proc.stdout == ""


def test_manifests_hold_no_secret_and_name_redis_acl_ones(k8s: Rendered) -> None:
    resources = docs(k8s.rendered["prod"])
    assert not by_kind(resources, "Secret")  # CD commits the manifests: no Secret in them
    specs = pod_specs(resources)
    redis = specs["redis"]
    acl = next(v for v in redis["volumes"] if v.get("secret", {}).get("secretName") == "redis-acl")
    (mount,) = [m for m in redis["containers"][0]["volumeMounts"] if m["name"] == acl["name"]]
    assert mount["mountPath"] == "/etc/redis/acl"  # the image's --aclfile /etc/redis/acl/users.acl
    probe = redis["containers"][0]["readinessProbe"]["exec"]["command"]
    assert probe[probe.index("--user") + 1] == "healthcheck"
    go = specs["go-service"]["containers"][0]
    env = {e["name"]: e["value"] for e in go["env"]}
    assert env["CACHE_BACKEND"] == "redis"
    assert env["REDIS_URL"] == "redis://go-service@redis:6379/0"  # no password in the URL
    (password,) = [v for v in specs["go-service"]["volumes"] if "secret" in v]
    assert password["secret"]["secretName"] == "go-service-redis"
    (mount,) = go["volumeMounts"]
    assert env["REDIS_PASSWORD_FILE"] == mount["mountPath"] + "/password"


def secrets_of(text: str) -> dict[str, dict[str, str]]:
    return {
        s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        for s in docs(text)
        if s["kind"] == "Secret"
    }


def test_render_writes_the_secrets_apart(k8s: Rendered, tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.mkdir()
    (given / "go-service-redis-password").write_text("s3cret-of-the-test\n")
    generated, from_given = tmp_path / "generated.yaml", tmp_path / "given.yaml"
    render("prod", [], args=("--secrets-out", str(generated)))
    manifests = render(
        "prod", [], args=("--secrets-out", str(from_given), "--secrets-from", str(given))
    )
    assert "s3cret-of-the-test" not in manifests
    for path, password in ((generated, None), (from_given, "s3cret-of-the-test")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        report = k8s.kubeconform.run(path.read_text())
        assert report["exit"] == 0, report["resources"]
        secrets = secrets_of(path.read_text())
        assert set(secrets) == {"redis-acl", "go-service-redis"}
        go_password = secrets["go-service-redis"]["password"].strip()
        # Yours, or 18 random bytes in base64 (less its punctuation).
        assert go_password == password if password else len(go_password) >= 18
        digest = hashlib.sha256(go_password.encode()).hexdigest()
        acl = secrets["redis-acl"]["users.acl"]
        assert f"user go-service reset on #{digest} " in acl
        assert go_password not in acl
        assert acl.splitlines()[0] == "user default reset"
    # Generated anew each render, never a fixed value.
    assert secrets_of(generated.read_text()) != secrets_of(from_given.read_text())
