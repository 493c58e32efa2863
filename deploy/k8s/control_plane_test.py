"""The prod overlay on a real Kubernetes control plane: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler on loopback, kwok for nodes.

What it requires of the rendered, digest-pinned prod overlay (what CD commits):
- the API server accepts it, server-side applied, into its namespace, which enforces the
  PodSecurity "restricted" standard;
- every Deployment rolls out: all replicas Running and Ready on kwok's nodes, the Go service's
  count set by its HPA (the manifests leave `replicas` to it);
- the HPA, the PodDisruptionBudgets (processed by the disruption controller) and the
  NetworkPolicies are accepted;
- a rolling update of the Go service to a new image digest completes;
- a sync (the render applied again, forcing conflicts as Argo CD's server-side apply does) keeps
  the count the HPA chose;
- a pod that breaks the restricted standard is refused by the real PodSecurity admission.

kwok plays the kubelet: it marks pods Running and Ready without running them (no image is pulled;
the pod and service CIDRs are API data only, nothing sends traffic to them; node_test runs a real
kubelet). The control plane is cluster.py's: its binaries are built once per machine by
go_tools.sh from deploy/k8s/controlplane/go.mod (k8s.io/kubernetes at one version); etcd is
trixie's etcd-server, pinned in tools/rules/debian/packages.lock.json.

Inputs, from the BUILD file, in the environment: GO_TOOLS_SH, CP_GO_MOD, CP_GO_SUM, TOOLS_GO_MOD,
TOOLS_GO_SUM, RENDER_SH, PROD_OVERLAY, TOOL_FROM_TARS_SH, PINS (NAME=DIGEST_FILE pairs) and
ETCD_TARS, lists space-separated.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.k8s.cluster import TIMINGS, ControlPlane, env_list, go_tools, render, run, wait_for
from tools.testing.python.support import free_port

NAMESPACE = "cache-platform"
REGISTRY = "127.0.0.1:5000/cp-test"  # only a name here: kwok pulls nothing
NODES = ("kwok-node-0", "kwok-node-1", "kwok-node-2")


class Cluster:
    """The control plane, kwok's nodes, and the rendered prod overlay."""

    def __init__(
        self, cp: ControlPlane, rendered: Path, secrets: Path, pins: dict[str, str]
    ) -> None:
        self.cp = cp
        self.rendered = rendered
        self.secrets = secrets
        self.pins = pins

    def apply_rendered(self, *flags: str) -> None:
        """As deploy/README.md says: the manifests (the namespace first), then their Secrets."""
        self.cp.apply(self.rendered, self.secrets, flags=flags)


def start_kwok_nodes(cp: ControlPlane) -> None:
    cp.start(
        "kwok",
        str(cp.bins / "bin/kwok"),
        "--kubeconfig",
        str(cp.admin),
        "--config",
        str(cp.bins / "kwok-stages.yaml"),
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--node-ip=127.0.0.1",
        "--cidr=10.244.0.0/24",
        "--server-address",
        f"127.0.0.1:{free_port()}",
    )
    nodes = cp.workdir / "nodes.json"
    nodes.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {
                            "name": n,
                            "annotations": {"kwok.x-k8s.io/node": "fake"},
                            "labels": {"kubernetes.io/hostname": n, "type": "kwok"},
                        },
                        "status": {
                            "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                            "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                        },
                    }
                    for n in NODES
                ],
            }
        )
    )
    cp.kubectl("apply", "-f", str(nodes))
    wait_for(
        "kwok nodes Ready",
        lambda: all(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n["status"].get("conditions", [])
            )
            for n in cp.get("nodes")["items"]
        ),
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    env = os.environ
    pins = env_list("PINS")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        start = time.monotonic()
        bins = go_tools(env["GO_TOOLS_SH"], env["CP_GO_MOD"], env["CP_GO_SUM"])
        TIMINGS["binaries (go_tools.sh; cold: a build)"] = time.monotonic() - start
        rendered, secrets = tmp / "prod.yaml", tmp / "secrets.yaml"
        render(env["PROD_OVERLAY"], pins, REGISTRY, rendered, secrets)
        etcd = run(
            env["TOOL_FROM_TARS_SH"], str(tmp / "etcd-bin"), "usr/bin/etcd", *env_list("ETCD_TARS")
        ).strip()
        cp = ControlPlane(tmp, bins, etcd)
        up = time.monotonic()
        cp.up()  # takes itself down again when it fails half-way
        try:
            start_kwok_nodes(cp)
            TIMINGS["control plane up, nodes Ready (bring-up)"] = time.monotonic() - up
            yield Cluster(cp, rendered, secrets, dict(p.split("=", 1) for p in pins))
        finally:
            cp.down()


# First (pytest runs a module's tests in file order): the rolling update below sets the Go
# Deployment's image with `kubectl set image`, which a later server-side apply would conflict with.
def test_a_non_compliant_pod_is_refused(cluster: Cluster) -> None:
    cp = cluster.cp
    cluster.apply_rendered()
    pod = cp.workdir / "root-pod.json"
    redis_digest = Path(cluster.pins["redis"]).read_text().strip()
    pod.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "runs-as-root", "namespace": NAMESPACE},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": f"{REGISTRY}/cache-platform/redis@{redis_digest}",
                            "securityContext": {
                                "runAsUser": 0,
                                "allowPrivilegeEscalation": True,
                            },
                        }
                    ]
                },
            }
        )
    )
    proc = cp.kubectl_proc("apply", "--server-side", "-f", str(pod))
    assert proc.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in proc.stderr
    assert "runAsNonRoot" in proc.stderr
    assert (
        cp.get("-n", NAMESPACE, "pods", "--field-selector", "metadata.name=runs-as-root")["items"]
        == []
    )


def test_prod_overlay_rolls_out_and_updates_under_restricted(cluster: Cluster) -> None:
    cp = cluster.cp
    start = time.monotonic()
    cluster.apply_rendered()
    labels = cp.get("namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    # The Go Deployment names no count: the HPA raises it to its minimum.
    hpa = cp.get("-n", NAMESPACE, "horizontalpodautoscaler", "go-service")
    wait_for(
        "the HPA's count on the Go Deployment",
        lambda: (
            cp.get("-n", NAMESPACE, "deployment", "go-service")["spec"]["replicas"]
            == hpa["spec"]["minReplicas"]
        ),
    )
    deployments = {
        d["metadata"]["name"]: d for d in cp.get("-n", NAMESPACE, "deployments")["items"]
    }
    assert set(deployments) == set(cluster.pins)
    for name in deployments:
        cp.kubectl(
            "-n",
            NAMESPACE,
            "rollout",
            "status",
            f"deployment/{name}",
            "--timeout=120s",
            timeout=130,
        )
    pods = cp.get("-n", NAMESPACE, "pods")["items"]
    for name, d in deployments.items():
        mine = [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/name") == name]
        assert len(mine) == d["spec"]["replicas"], name
        digest = Path(cluster.pins[name]).read_text().strip()
        for pod in mine:
            assert pod["status"]["phase"] == "Running", pod["metadata"]["name"]
            assert pod["spec"]["nodeName"] in NODES
            assert (
                pod["spec"]["containers"][0]["image"]
                == f"{REGISTRY}/cache-platform/{name}@{digest}"
            )
    TIMINGS["apply + every Deployment rolled out"] = time.monotonic() - start

    # Accepted, and the disruption controller has counted the pods each budget covers.
    wait_for(
        "PodDisruptionBudgets processed",
        lambda: all(
            pdb["status"].get("expectedPods")
            == deployments[pdb["metadata"]["name"]]["spec"]["replicas"]
            for pdb in cp.get("-n", NAMESPACE, "poddisruptionbudgets")["items"]
        ),
    )
    assert hpa["spec"]["scaleTargetRef"]["name"] == "go-service"
    policies = {p["metadata"]["name"] for p in cp.get("-n", NAMESPACE, "networkpolicies")["items"]}
    assert policies == {
        "default-deny",
        "dns",
        "nginx",
        "apps",
        "redis",
        "prometheus",
        "alertmanager",
    }

    # A new build: the same repository at another digest, rolled out replica by replica.
    start = time.monotonic()
    new_digest = "sha256:" + hashlib.sha256(b"the next build of go-service").hexdigest()
    new_image = f"{REGISTRY}/cache-platform/go-service@{new_digest}"
    cp.kubectl("-n", NAMESPACE, "set", "image", "deployment/go-service", f"go-service={new_image}")
    cp.kubectl(
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/go-service",
        "--timeout=120s",
        timeout=130,
    )
    go_pods = [
        p
        for p in cp.get("-n", NAMESPACE, "pods", "-l", "app.kubernetes.io/name=go-service")["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]
    assert {p["spec"]["containers"][0]["image"] for p in go_pods} == {new_image}
    assert len(go_pods) == deployments["go-service"]["spec"]["replicas"]
    replica_sets = cp.get(
        "-n", NAMESPACE, "replicasets", "-l", "app.kubernetes.io/name=go-service"
    )["items"]
    assert sorted(rs["spec"]["replicas"] for rs in replica_sets) == [0, 3]
    TIMINGS["rolling update to a new digest"] = time.monotonic() - start


def test_a_sync_keeps_the_hpas_count(cluster: Cluster) -> None:
    cp = cluster.cp
    # A spike: the HPA takes the Go Deployment above the manifests' count (its minimum raised
    # stands in for the CPU metrics there are none of here).
    cp.kubectl(
        "-n",
        NAMESPACE,
        "patch",
        "horizontalpodautoscaler",
        "go-service",
        "--type=merge",
        "--patch",
        '{"spec": {"minReplicas": 5}}',
    )
    wait_for(
        "the HPA scaling the Go Deployment to 5",
        lambda: cp.get("-n", NAMESPACE, "deployment", "go-service")["spec"]["replicas"] == 5,
    )
    # Argo CD's self-heal: the render applied again, conflicts forced. The HPA's minimum goes back
    # to the render's; the Deployment's count must stay the HPA's (a `replicas` in the render
    # would set it here, at once).
    cluster.apply_rendered("--force-conflicts")
    assert (
        cp.get("-n", NAMESPACE, "horizontalpodautoscaler", "go-service")["spec"]["minReplicas"] == 3
    )
    assert cp.get("-n", NAMESPACE, "deployment", "go-service")["spec"]["replicas"] == 5
