"""Static checks of deploy/k8s: every overlay builds, is valid against Kubernetes 1.37's schemas
(kubeconform -strict) and keeps the rules the manifests promise.

The rules, checked on the rendered output (not on the sources): every pod meets the PodSecurity
"restricted" standard and more (read-only root; the user left to the image), has probes on the
services' own /healthz and /readyz, requests and limits; the ConfigMaps hold byte for byte the
Compose stack's files; the Go tier shares its cache through Redis and Nginx addresses its pods one
by one (a headless Service it resolves); every serving pod pauses before it stops for longer than
its endpoints take to go, within its grace period; Prometheus alerts through Alertmanager; the HPA
alone sets the Go Deployment's replicas; the NetworkPolicies allow exactly the stack's flows, in
and out (a table of connections, judged by NetworkPolicy's rules); the prod render names every
image as REGISTRY/cache-platform/NAME@DIGEST with the digests Bazel built.

Schemas: kubernetes-validate's (PyPI, deploy/k8s/requirements_lock.txt) reference their shared
definitions by an https $id, which kubeconform would fetch; this test writes, for each kind it
meets, a standalone schema (the kind's schema with the definitions it reaches inlined), offline.

Inputs, from the BUILD file, in the environment: GO_TOOLS (go_tools.sh, its go.mod and go.sum),
RENDER_SH, DEPLOY_DIR, GUNICORN_CONF, and PINS (NAME=DIGEST_FILE pairs), lists space-separated.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from deploy import stack_settings

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
GUNICORN_CONF = Path(os.environ["GUNICORN_CONF"])
# Who a pod runs as: left to the image's User (numeric, so that runAsNonRoot can be checked).
USER_FIELDS = {"runAsUser", "runAsGroup", "fsGroup", "supplementalGroups"}


def tools_dir() -> Path:
    """Where go_tools.sh put kustomize and kubeconform (built once per machine: about a minute
    cold on an idle 2-CPU machine, so the bound sits far above it)."""
    out = subprocess.run(GO_TOOLS, check=True, capture_output=True, text=True, timeout=1500)
    return Path(out.stdout.strip())


def render(
    overlay: str, pins: list[str], env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> str:
    """render.sh's output for deploy/k8s/overlays/OVERLAY, pinned with NAME=DIGEST_FILE pairs;
    kustomize only: the k8s fixture has built the tools first."""
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


def config_map(resources: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The data of the ConfigMap kustomize generated as NAME (its name has a hash suffix)."""
    [data] = [
        r["data"]
        for r in resources
        if r["kind"] == "ConfigMap" and r["metadata"]["name"].rsplit("-", 1)[0] == name
    ]
    return data


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
    tools = tools_dir()  # cold, a build: before the renders, whose bound is kustomize's alone
    return Rendered(
        rendered={
            "dev": render("dev", []),
            "prod": render("prod", []),
            "prod-pinned": render("prod", PINS, {"OCI_REGISTRY": TEST_REGISTRY}),
        },
        pins=dict(p.split("=", 1) for p in PINS),
        kubeconform=Kubeconform(tools / "bin" / "kubeconform", tmp_path_factory.mktemp("schemas")),
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
    prod = docs(k8s.rendered["prod"])
    nginx = config_map(prod, "nginx-config")
    assert nginx["nginx.conf"] == (DEPLOY / "nginx/nginx.conf").read_text()
    for name in ("upstreams.conf", "unlimited-clients.conf"):
        assert nginx[name] == (DEPLOY / "nginx/conf.d" / name).read_text()
    for rules in ("recording.yml", "alerts.yml"):
        assert (
            config_map(prod, "prometheus-rules")[rules]
            == (DEPLOY / "prometheus/rules" / rules).read_text()
        )
    prom = yaml.safe_load(config_map(prod, "prometheus-config")["prometheus.yml"])
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


def test_services_settings_come_from_the_stack_settings_file(k8s: Rendered) -> None:
    for overlay, text in k8s.rendered.items():
        resources = docs(text)
        (config_map,) = [
            r
            for r in by_kind(resources, "ConfigMap").values()
            if r["metadata"]["name"].startswith("stack-settings-")
        ]
        assert config_map["data"] == stack_settings.read(DEPLOY / "stack.env"), overlay
        specs = pod_specs(resources)
        for service, variable, setting in (
            ("go-service", "CACHE_TTL", "STACK_GO_CACHE_TTL"),
            ("go-service", "REDIS_TIMEOUT", "STACK_GO_REDIS_TIMEOUT"),
            ("py-service", "CACHE_TTL", "STACK_PY_CACHE_TTL"),
        ):
            (container,) = specs[service]["containers"]
            (entry,) = [e for e in container["env"] if e["name"] == variable]
            # The hashed name: a change of the file rolls the Deployment.
            assert entry["valueFrom"]["configMapKeyRef"] == {
                "name": config_map["metadata"]["name"],
                "key": setting,
            }, (overlay, service, variable)


def test_prometheus_scrapes_every_metrics_port_under_its_compose_job_name(k8s: Rendered) -> None:
    specs = pod_specs(docs(k8s.rendered["prod"]))
    deployments = by_kind(docs(k8s.rendered["prod"]), "Deployment")
    compose_jobs = {
        c["job_name"]
        for c in yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())[
            "scrape_configs"
        ]
    }
    for app, port in (
        ("go-service", 8080),
        ("py-service", 8000),
        ("nginx", 9145),
        ("alertmanager", 9093),
    ):
        annotations = deployments[app]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == port
        assert port in [p["containerPort"] for p in specs[app]["containers"][0]["ports"]]
        assert app in compose_jobs  # the job label the rules use


def selects(selector: dict[str, Any], labels: dict[str, str] | None) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects a pod with these labels;
    None is no pod of the namespace (an address outside it), which no pod selector selects."""
    if labels is None:
        return False
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def test_go_tier_shares_its_cache_through_redis(k8s: Rendered) -> None:
    # CACHE_BACKEND defaults to memory: without it each pod fills and answers on its own.
    for overlay in ("dev", "prod"):
        [c] = pod_specs(docs(k8s.rendered[overlay]))["go-service"]["containers"]
        env = {e["name"]: e for e in c["env"]}
        assert env["CACHE_BACKEND"].get("value") == "redis", (overlay, env)
        assert "REDIS_URL" in env, overlay


def test_nginx_resolves_every_go_pod(k8s: Rendered) -> None:
    # One ClusterIP behind max_fails=1: one connect error marked the whole tier down for
    # fail_timeout. A headless Service's name lists every ready pod; Nginx resolves it again and
    # marks pods down one by one.
    prod = docs(k8s.rendered["prod"])
    conf = config_map(prod, "nginx-config")["go-tier.conf"]
    upstream = re.search(r"upstream go_service \{(.*?)\}", conf, re.S)
    assert upstream, conf
    servers = re.findall(r"^\s*server\s+(\S+)([^;]*);", upstream.group(1), re.M)
    [(address, params)] = [(a, p) for a, p in servers if "backup" not in p.split()]
    assert "resolve" in params.split(), address
    assert re.search(r"^resolver\s+\S+\s.*\bvalid=1s\b", conf, re.M), conf
    host, port = address.rsplit(":", 1)
    service_name, namespace, domain = host.split(".", 2)
    # Nginx's resolver uses no search path: the name must be the Service's full one.
    assert namespace in by_kind(prod, "Namespace"), host
    assert domain == "svc.cluster.local", host
    service = by_kind(prod, "Service")[service_name]["spec"]
    assert service["clusterIP"] == "None", service
    template = by_kind(prod, "Deployment")["go-service"]["spec"]["template"]
    assert selects({"matchLabels": service["selector"]}, template["metadata"]["labels"])
    [service_port] = [p for p in service["ports"] if p["port"] == int(port)]
    [c] = template["spec"]["containers"]
    assert {"name": service_port["targetPort"], "containerPort": int(port)} in c["ports"]


# How long a pod stays in rotation after it starts terminating, at most: the answer's TTL in the
# cluster DNS (5 s, CoreDNS' kubernetes plugin default) + Nginx's re-resolution (valid=1s,
# go-tier.conf) + about a second for the EndpointSlice to change and kube-proxy to sync. The
# preStop pause must be longer (deploy/README.md, "Kubernetes").
ENDPOINT_PROPAGATION_S = 7


def drain_seconds(name: str, container: dict[str, Any], nginx_conf: str) -> int:
    """How long each serving container may take to finish its requests after its stop signal."""
    if name == "go-service":
        env = {e["name"]: e.get("value", "") for e in container["env"]}
        m = re.fullmatch(r"(\d+)s", env["SHUTDOWN_TIMEOUT"])
    elif name == "py-service":
        m = re.search(r"^graceful_timeout = (\d+)$", GUNICORN_CONF.read_text(), re.M)
    else:
        m = re.search(r"^worker_shutdown_timeout (\d+)s;", nginx_conf, re.M)
    assert m, name
    return int(m.group(1))


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_serving_pods_outlast_their_endpoints(k8s: Rendered, overlay: str) -> None:
    # Endpoint removal and SIGTERM are concurrent: a pod that stops at once refuses connections
    # that Nginx and kube-proxy still send it. The images have no sleep binary: kubelet's own
    # sleep action (GA in Kubernetes 1.34) pauses instead.
    resources = docs(k8s.rendered[overlay])
    nginx_conf = config_map(resources, "nginx-config")["nginx.conf"]
    serving = {
        name: d
        for name, d in by_kind(resources, "Deployment").items()
        if d["spec"]["strategy"]["type"] == "RollingUpdate"
    }
    assert set(serving) == {"go-service", "py-service", "nginx"}
    for name, d in serving.items():
        spec = d["spec"]["template"]["spec"]
        for c in spec["containers"]:
            pause = c["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert pause > ENDPOINT_PROPAGATION_S, name
            grace = spec["terminationGracePeriodSeconds"]
            assert grace >= pause + drain_seconds(name, c, nginx_conf), (name, grace)


def test_prometheus_alerts_reach_alertmanager(k8s: Rendered, tmp_path: Path) -> None:
    prod = docs(k8s.rendered["prod"])
    prom = yaml.safe_load(config_map(prod, "prometheus-config")["prometheus.yml"])
    [target] = [
        t
        for am in prom["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    host, port = target.split(":")
    service = by_kind(prod, "Service")[host]["spec"]
    deployment = by_kind(prod, "Deployment")["alertmanager"]["spec"]
    assert selects(
        {"matchLabels": service["selector"]}, deployment["template"]["metadata"]["labels"]
    )
    [service_port] = [p for p in service["ports"] if p["port"] == int(port)]
    [c] = deployment["template"]["spec"]["containers"]
    assert {"name": service_port["targetPort"], "containerPort": 9093} in c["ports"]
    assert c["image"] == "cache-platform/alertmanager:dev"
    # The receiver's URL: the file alertmanager.yml reads, from a Secret the render writes apart.
    config = yaml.safe_load((DEPLOY / "alertmanager/alertmanager.yml").read_text())
    [webhook] = config["receivers"][0]["webhook_configs"]
    [mount] = [m for m in c["volumeMounts"] if m["mountPath"] == webhook["url_file"]]
    [volume] = [v for v in deployment["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    secrets_out = tmp_path / "secrets.yaml"
    render("prod", [], args=("--secrets-out", str(secrets_out)))
    secret = secrets_of(secrets_out.read_text())[volume["secret"]["secretName"]]
    url = urlsplit(secret[mount["subPath"]].strip())
    assert (url.hostname, url.port, url.path) == ("nginx", 9145, "/alerts")
    assert {"name": "metrics", "port": 9145, "targetPort": "metrics"} in by_kind(prod, "Service")[
        "nginx"
    ]["spec"]["ports"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_the_hpa_alone_sets_its_deployments_replicas(k8s: Rendered, overlay: str) -> None:
    # A `replicas` in the manifest is reset by every sync (Argo CD's self-heal): the HPA's count
    # would be undone in the middle of a spike.
    resources = docs(k8s.rendered[overlay])
    hpas = by_kind(resources, "HorizontalPodAutoscaler")
    assert hpas
    for hpa in hpas.values():
        target = by_kind(resources, "Deployment")[hpa["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], (overlay, target["metadata"]["name"])


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod of the namespace (its labels and named container ports)
    or an address outside it (labels None: the API server, the cluster DNS, the internet)."""

    name: str
    labels: dict[str, str] | None = None
    ports: dict[str, int] = field(default_factory=dict)


def peer_matches(peers: list[dict[str, Any]] | None, other: Peer) -> bool:
    if not peers:  # no `from`/`to`: anyone
        return True
    for p in peers:
        # Only podSelector peers are used; another kind needs its semantics here first.
        assert p.keys() == {"podSelector"}, p
        if selects(p["podSelector"], other.labels):
            return True
    return False


def port_matches(ports: list[dict[str, Any]] | None, dst: Peer, port: int, protocol: str) -> bool:
    if not ports:  # no `ports`: every port
        return True
    for p in ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        want = p.get("port")
        # A named port is the destination pod's (for ingress and egress rules alike).
        if want is None or want == port or (isinstance(want, str) and dst.ports.get(want) == port):
            return True
    return False


def allows(policies: list[dict[str, Any]], src: Peer, dst: Peer, port: int, protocol: str) -> bool:
    """Whether NetworkPolicies let src open a connection to dst:port: src's egress (if any
    policy selects it for egress) and dst's ingress (likewise) must both allow it."""
    for pod, direction, rules_key, peers_key, other in (
        (src, "Egress", "egress", "to", dst),
        (dst, "Ingress", "ingress", "from", src),
    ):
        selecting = [
            p
            for p in policies
            if direction in p["policyTypes"] and selects(p["podSelector"], pod.labels)
        ]
        if selecting and not any(
            peer_matches(rule.get(peers_key), other)
            and port_matches(rule.get("ports"), dst, port, protocol)
            for p in selecting
            for rule in p.get(rules_key, [])
        ):
            return False
    return True


OUTSIDE = Peer("outside")
# The flows the stack needs (allowed) and a sample of those it must not have (denied):
# (source, destination, port, protocol, allowed).
FLOWS = [
    ("outside", "nginx", 8080, "TCP", True),
    ("nginx", "go-service", 8080, "TCP", True),
    ("nginx", "py-service", 8000, "TCP", True),
    ("go-service", "redis", 6379, "TCP", True),
    ("py-service", "redis", 6379, "TCP", True),
    ("prometheus", "go-service", 8080, "TCP", True),
    ("prometheus", "py-service", 8000, "TCP", True),
    ("prometheus", "nginx", 9145, "TCP", True),
    ("prometheus", "alertmanager", 9093, "TCP", True),
    ("prometheus", "outside", 6443, "TCP", True),  # the API server (kubernetes_sd_configs)
    ("prometheus", "outside", 443, "TCP", True),
    ("alertmanager", "nginx", 9145, "TCP", True),  # the base's receiver
    *[
        (app, "outside", 53, proto, True)
        for app in ("go-service", "py-service")
        for proto in ("UDP", "TCP")
    ],
    *[(app, "outside", 53, "UDP", True) for app in ("nginx", "prometheus", "alertmanager")],
    # Egress: nothing beyond the stack (the API server, the internet).
    ("go-service", "outside", 443, "TCP", False),
    ("go-service", "outside", 6443, "TCP", False),
    ("py-service", "outside", 80, "TCP", False),
    ("nginx", "outside", 443, "TCP", False),
    ("redis", "outside", 53, "UDP", False),
    ("redis", "go-service", 8080, "TCP", False),
    ("alertmanager", "outside", 443, "TCP", False),
    ("prometheus", "outside", 80, "TCP", False),
    # Inside: only the paths above.
    ("nginx", "redis", 6379, "TCP", False),
    ("go-service", "py-service", 8000, "TCP", False),
    ("nginx", "prometheus", 9090, "TCP", False),
    ("alertmanager", "go-service", 8080, "TCP", False),
    # Ingress: only Nginx's proxy port from outside.
    ("outside", "go-service", 8080, "TCP", False),
    ("outside", "redis", 6379, "TCP", False),
    ("outside", "prometheus", 9090, "TCP", False),
    ("outside", "alertmanager", 9093, "TCP", False),
    ("outside", "nginx", 9145, "TCP", False),
]


@pytest.mark.parametrize(("src", "dst", "port", "protocol", "allowed"), FLOWS)
def test_network_policies_allow_exactly_the_stacks_flows(
    k8s: Rendered, src: str, dst: str, port: int, protocol: str, allowed: bool
) -> None:
    prod = docs(k8s.rendered["prod"])
    policies = [p["spec"] for p in by_kind(prod, "NetworkPolicy").values()]
    pods = {
        name: Peer(
            name,
            d["spec"]["template"]["metadata"]["labels"],
            {
                p["name"]: p["containerPort"]
                for c in d["spec"]["template"]["spec"]["containers"]
                for p in c["ports"]
            },
        )
        for name, d in by_kind(prod, "Deployment").items()
    }
    pods["outside"] = OUTSIDE
    assert allows(policies, pods[src], pods[dst], port, protocol) is allowed


def test_every_pod_is_denied_by_default(k8s: Rendered) -> None:
    # The flows above hold for the pods there are; a pod added later gets nothing until a
    # policy names it.
    policies = by_kind(docs(k8s.rendered["prod"]), "NetworkPolicy")
    assert policies["default-deny"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }


def test_go_service_scales_within_a_disruption_budget(k8s: Rendered) -> None:
    prod = docs(k8s.rendered["prod"])
    hpa = by_kind(prod, "HorizontalPodAutoscaler")["go-service"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "go-service",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
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
    env = {e["name"]: e.get("value") for e in go["env"]}
    assert env["CACHE_BACKEND"] == "redis"
    assert env["REDIS_URL"] == "redis://go-service@redis:6379/0"  # no password in the URL
    (password,) = [v for v in specs["go-service"]["volumes"] if "secret" in v]
    assert password["secret"]["secretName"] == "go-service-redis"
    (mount,) = go["volumeMounts"]
    assert env["REDIS_PASSWORD_FILE"] == mount["mountPath"] + "/password"


# Alertmanager's receiver when --secrets-from gives none: Nginx's log, as in the Compose stack.
DEFAULT_RECEIVER = "http://nginx:9145/alerts"


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
    (given / "alertmanager-webhook-url").write_text("https://hooks.example/t0ken-of-the-test\n")
    generated, from_given = tmp_path / "generated.yaml", tmp_path / "given.yaml"
    render("prod", [], args=("--secrets-out", str(generated)))
    manifests = render(
        "prod", [], args=("--secrets-out", str(from_given), "--secrets-from", str(given))
    )
    assert "s3cret-of-the-test" not in manifests
    assert "t0ken-of-the-test" not in manifests
    for path, password in ((generated, None), (from_given, "s3cret-of-the-test")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        report = k8s.kubeconform.run(path.read_text())
        assert report["exit"] == 0, report["resources"]
        secrets = secrets_of(path.read_text())
        assert set(secrets) == {"redis-acl", "go-service-redis", "alertmanager-webhook"}
        url = secrets["alertmanager-webhook"]["url"].strip()
        assert url == ("https://hooks.example/t0ken-of-the-test" if password else DEFAULT_RECEIVER)
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
