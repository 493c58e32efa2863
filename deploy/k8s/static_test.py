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

Arguments: GO_TOOLS_SH GO_MOD GO_SUM RENDER_SH DEPLOY_DIR NAME=DIGEST_FILE...
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.37.0"
TEST_REGISTRY = "127.0.0.1:5000/test"
# kubeconform's schema path template, for the standalone schemas this test writes.
SCHEMA_TEMPLATE = (
    "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/"
    "{{ .ResourceKind }}{{ .KindSuffix }}.json"
)
# Who a pod runs as: left to the image's User (numeric, so that runAsNonRoot can be checked).
USER_FIELDS = {"runAsUser", "runAsGroup", "fsGroup", "supplementalGroups"}
USAGE = "usage: static_test.py GO_TOOLS_SH GO_MOD GO_SUM RENDER_SH DEPLOY_DIR NAME=DIGEST_FILE..."
ARGS: list[str] = []


def tools_dir() -> Path:
    """Where go_tools.sh put kustomize and kubeconform (built once per machine)."""
    out = subprocess.run(ARGS[:3], check=True, capture_output=True, text=True, timeout=1800)
    return Path(out.stdout.strip())


def render(overlay: str, pins: list[str], env: dict[str, str] | None = None) -> str:
    """render.sh's output for deploy/k8s/overlays/OVERLAY, pinned with NAME=DIGEST_FILE pairs."""
    deploy = Path(ARGS[4])
    out = subprocess.run(
        [ARGS[3], *ARGS[:3], str(deploy / "k8s" / "overlays" / overlay), *pins],
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


class StaticTest(unittest.TestCase):
    tmp: tempfile.TemporaryDirectory[str]
    tools: Path
    pins: dict[str, str]
    rendered: dict[str, str]

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.tools = tools_dir()
        cls.pins = dict(p.split("=", 1) for p in ARGS[5:])
        cls.rendered = {
            "dev": render("dev", []),
            "prod": render("prod", []),
            "prod-pinned": render("prod", ARGS[5:], {"OCI_REGISTRY": TEST_REGISTRY}),
        }
        cls.kubeconform = Kubeconform(
            cls.tools / "bin" / "kubeconform", Path(cls.tmp.name) / "schemas"
        )

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def test_every_overlay_is_valid_kubernetes(self) -> None:
        for name, text in self.rendered.items():
            with self.subTest(overlay=name):
                report = self.kubeconform.run(text)
                summary = report["summary"]
                self.assertEqual(report["exit"], 0, report["resources"])
                self.assertEqual(
                    summary["invalid"] + summary["errors"] + summary["skipped"],
                    0,
                    report["resources"],
                )
                self.assertEqual(summary["valid"], len(docs(text)))

    def test_kubeconform_rejects_unknown_fields(self) -> None:
        # The check above could pass by finding no schema: a typo must fail it.
        bad = self.rendered["prod"].replace("readOnlyRootFilesystem", "readOnlyRootFileSystem", 1)
        report = self.kubeconform.run(bad)
        self.assertNotEqual(report["exit"], 0)
        self.assertEqual(report["summary"]["invalid"], 1, report["resources"])

    def test_pods_meet_restricted_and_read_only_root(self) -> None:
        for overlay in ("dev", "prod"):
            for name, spec in pod_specs(docs(self.rendered[overlay])).items():
                with self.subTest(overlay=overlay, deployment=name):
                    pod = spec["securityContext"]
                    self.assertIs(pod["runAsNonRoot"], True)
                    # The user is the image's (tools/rules/oci/base/nonroot.bzl): not repeated here.
                    self.assertFalse(USER_FIELDS & pod.keys(), pod)
                    self.assertEqual(pod["seccompProfile"], {"type": "RuntimeDefault"})
                    for volume in spec.get("volumes", []):
                        self.assertTrue({"configMap", "emptyDir"} & volume.keys(), volume)
                    for c in spec["containers"]:
                        sc = c["securityContext"]
                        self.assertFalse(USER_FIELDS & sc.keys(), sc)
                        self.assertIs(sc["allowPrivilegeEscalation"], False)
                        self.assertIs(sc["readOnlyRootFilesystem"], True)
                        self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
                        self.assertNotIn("privileged", sc)
                        self.assertTrue(c["resources"]["requests"].keys() >= {"cpu", "memory"})
                        self.assertTrue(c["resources"]["limits"].keys() >= {"cpu", "memory"})
                        self.assertIn("readinessProbe", c)
                        self.assertIn("livenessProbe", c)
                        self.assertFalse(any("hostPort" in p for p in c.get("ports", [])))

    def test_apps_probe_their_own_health_endpoints(self) -> None:
        specs = pod_specs(docs(self.rendered["prod"]))
        for app in ("go-service", "py-service"):
            c = specs[app]["containers"][0]
            self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
            self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(
            specs["nginx"]["containers"][0]["readinessProbe"]["httpGet"]["path"], "/healthz"
        )
        self.assertEqual(
            specs["prometheus"]["containers"][0]["readinessProbe"]["httpGet"]["path"], "/-/ready"
        )

    def test_config_maps_are_the_compose_stacks_files(self) -> None:
        deploy = Path(ARGS[4])
        maps = {
            r["metadata"]["name"].rsplit("-", 1)[0]: r["data"]
            for r in docs(self.rendered["prod"])
            if r["kind"] == "ConfigMap"
        }
        self.assertEqual(
            maps["nginx-config"]["nginx.conf"], (deploy / "nginx/nginx.conf").read_text()
        )
        self.assertEqual(
            maps["nginx-config"]["upstreams.conf"],
            (deploy / "nginx/conf.d/upstreams.conf").read_text(),
        )
        for rules in ("recording.yml", "alerts.yml"):
            self.assertEqual(
                maps["prometheus-rules"][rules], (deploy / "prometheus/rules" / rules).read_text()
            )
        prom = yaml.safe_load(maps["prometheus-config"]["prometheus.yml"])
        self.assertEqual(
            prom["rule_files"],
            ["/etc/prometheus/rules/recording.yml", "/etc/prometheus/rules/alerts.yml"],
        )
        self.assertEqual(prom["scrape_configs"][0]["kubernetes_sd_configs"][0]["role"], "pod")

    def test_prometheus_scrapes_every_metrics_port_under_its_compose_job_name(self) -> None:
        specs = pod_specs(docs(self.rendered["prod"]))
        deployments = by_kind(docs(self.rendered["prod"]), "Deployment")
        compose_jobs = {
            c["job_name"]
            for c in yaml.safe_load((Path(ARGS[4]) / "prometheus/prometheus.yml").read_text())[
                "scrape_configs"
            ]
        }
        for app, port in (("go-service", 8080), ("py-service", 8000), ("nginx", 9145)):
            annotations = deployments[app]["spec"]["template"]["metadata"]["annotations"]
            self.assertEqual(annotations["prometheus.io/scrape"], "true")
            self.assertEqual(int(annotations["prometheus.io/port"]), port)
            self.assertIn(port, [p["containerPort"] for p in specs[app]["containers"][0]["ports"]])
            self.assertIn(app, compose_jobs)  # the job label the rules use

    def test_network_policies(self) -> None:
        policies = by_kind(docs(self.rendered["prod"]), "NetworkPolicy")
        deny = policies["default-deny-ingress"]["spec"]
        self.assertEqual(deny, {"podSelector": {}, "policyTypes": ["Ingress"]})

        def sources(rule: dict[str, Any]) -> list[Any]:
            return [f["podSelector"] for f in rule.get("from", [])]

        apps = policies["apps"]["spec"]
        self.assertEqual(
            apps["podSelector"]["matchExpressions"][0]["values"], ["go-service", "py-service"]
        )
        self.assertEqual(
            sources(apps["ingress"][0]),
            [
                {"matchLabels": {"app.kubernetes.io/name": "nginx"}},
                {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            ],
        )
        redis = policies["redis"]["spec"]
        self.assertEqual(len(redis["ingress"]), 1)
        self.assertEqual(
            sources(redis["ingress"][0])[0]["matchExpressions"][0]["values"],
            ["go-service", "py-service"],
        )
        nginx = policies["nginx"]["spec"]["ingress"]
        self.assertEqual(nginx[0], {"ports": [{"port": "http"}]})  # the entry point: anyone
        self.assertEqual(
            sources(nginx[1]), [{"matchLabels": {"app.kubernetes.io/name": "prometheus"}}]
        )
        self.assertEqual(nginx[1]["ports"], [{"port": "metrics"}])
        # Each pod has an allow rule, but Prometheus: only the deny selects it (no ingress).
        selected = {"nginx", "go-service", "py-service", "redis"}
        self.assertEqual(set(pod_specs(docs(self.rendered["prod"]))) - selected, {"prometheus"})

    def test_go_service_scales_within_a_disruption_budget(self) -> None:
        prod = docs(self.rendered["prod"])
        hpa = by_kind(prod, "HorizontalPodAutoscaler")["go-service"]["spec"]
        self.assertEqual(
            hpa["scaleTargetRef"],
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "go-service"},
        )
        self.assertEqual((hpa["minReplicas"], hpa["maxReplicas"]), (3, 12))
        self.assertEqual(by_kind(prod, "Deployment")["go-service"]["spec"]["replicas"], 3)
        self.assertEqual(
            by_kind(prod, "PodDisruptionBudget")["go-service"]["spec"]["minAvailable"], 2
        )
        self.assertEqual(
            by_kind(prod, "Namespace")["cache-platform"]["metadata"]["labels"][
                "pod-security.kubernetes.io/enforce"
            ],
            "restricted",
        )

    def test_prod_render_pins_every_image_to_what_bazel_built(self) -> None:
        images = {}
        for name, spec in pod_specs(docs(self.rendered["prod-pinned"])).items():
            for c in spec["containers"]:
                images[name] = c["image"]
        self.assertEqual(set(images), set(self.pins))
        for name, image in images.items():
            digest = Path(self.pins[name]).read_text().strip()
            self.assertRegex(digest, r"^sha256:[0-9a-f]{64}$")
            self.assertEqual(image, f"{TEST_REGISTRY}/cache-platform/{name}@{digest}")
        # The unpinned render names the local tags only.
        for spec in pod_specs(docs(self.rendered["prod"])).values():
            self.assertRegex(spec["containers"][0]["image"], r"^cache-platform/[a-z-]+:dev$")

    def test_argo_cd_applies_what_cd_renders(self) -> None:
        app = yaml.safe_load((Path(ARGS[4]) / "k8s/gitops/application.yaml").read_text())
        self.assertEqual(app["kind"], "Application")
        self.assertEqual(app["spec"]["source"]["path"], "deploy/k8s/clusters/prod")
        self.assertEqual(app["spec"]["destination"]["namespace"], "cache-platform")
        self.assertIn("ServerSideApply=true", app["spec"]["syncPolicy"]["syncOptions"])

    def test_render_refuses_a_missing_or_bad_registry(self) -> None:
        for registry in ("", "https://registry.example", "Registry.Example"):
            with self.subTest(registry=registry):
                proc = subprocess.run(
                    [ARGS[3], *ARGS[:3], str(Path(ARGS[4]) / "k8s/overlays/prod"), *ARGS[5:]],
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                    env={**os.environ, "OCI_REGISTRY": registry},
                )
                self.assertEqual(proc.returncode, 2)
                self.assertIn("OCI_REGISTRY", proc.stderr)
                self.assertEqual(proc.stdout, "")


if __name__ == "__main__":
    ARGS = sys.argv[1:]
    if len(ARGS) < 6 or not all(re.match(r"^[a-z-]+=", a) for a in ARGS[5:]):
        sys.exit(USAGE)
    unittest.main(argv=sys.argv[:1])
