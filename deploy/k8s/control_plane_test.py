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
the pod and service CIDRs are API data only, nothing sends traffic to them). The binaries are built
once per machine by go_tools.sh from deploy/k8s/controlplane/go.mod (k8s.io/kubernetes at one
version); etcd is trixie's etcd-server, pinned in tools/rules/debian/packages.lock.json.

Inputs, from the BUILD file, in the environment: GO_TOOLS_SH, CP_GO_MOD, CP_GO_SUM, TOOLS_GO_MOD,
TOOLS_GO_SUM, RENDER_SH, PROD_OVERLAY, TOOL_FROM_TARS_SH, PINS (NAME=DIGEST_FILE pairs) and
ETCD_TARS, lists space-separated.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.testing.python.support import free_port, http_request, wait_until

NAMESPACE = "cache-platform"
REGISTRY = "127.0.0.1:5000/cp-test"  # only a name here: kwok pulls nothing
NODES = ("kwok-node-0", "kwok-node-1", "kwok-node-2")
STEP_TIMEOUT_S = 120
TIMINGS: dict[str, float] = {}


def run(*cmd: str, timeout: float = STEP_TIMEOUT_S, **kwargs: Any) -> str:
    """The command's stdout; its stderr in the error when it fails."""
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def wait_for(what: str, check: Callable[[], Any], timeout: float = STEP_TIMEOUT_S) -> None:
    """wait_until with this test's step bound, every 0.2 s; a failing kubectl (run's
    AssertionError, or its timeout) is "not yet" too, and named in the TimeoutError."""
    wait_until(
        check,
        timeout,
        interval_s=0.2,
        what=what,
        retry_on=(OSError, AssertionError, subprocess.TimeoutExpired),
    )


class Certificates:
    """A CA, the API server's serving certificate and client certificates, made with openssl."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = root / "ca.crt"
        self._openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=cache-platform-test-ca",
            "-keyout",
            str(root / "ca.key"),
            "-out",
            str(self.ca),
        )
        self._openssl("genrsa", "-out", str(root / "sa.key"), "2048")
        self._openssl("rsa", "-in", str(root / "sa.key"), "-pubout", "-out", str(root / "sa.pub"))

    def _openssl(self, *args: str) -> None:
        run("openssl", *args)

    def issue(self, name: str, subject: str, sans: str = "") -> tuple[Path, Path]:
        """(cert, key) for subject, signed by the CA; sans like "IP:127.0.0.1,DNS:localhost"."""
        key, csr, crt = (self.root / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        self._openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            str(key),
            "-out",
            str(csr),
        )
        ext = self.root / f"{name}.ext"
        usage = "serverAuth" if sans else "clientAuth"
        ext.write_text(f"extendedKeyUsage={usage}\n" + (f"subjectAltName={sans}\n" if sans else ""))
        self._openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(self.ca),
            "-CAkey",
            str(self.root / "ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        )
        return crt, key

    def kubeconfig(self, name: str, subject: str, server: str) -> Path:
        crt, key = self.issue(name, subject)
        path = self.root / f"{name}.kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {"server": server, "certificate-authority": str(self.ca)},
                        }
                    ],
                    "users": [
                        {
                            "name": name,
                            "user": {"client-certificate": str(crt), "client-key": str(key)},
                        }
                    ],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": name}}],
                    "current-context": "test",
                }
            )
        )
        return path


class ControlPlane:
    """The control plane's processes, run from a temp dir; kubectl as its admin."""

    tmp: tempfile.TemporaryDirectory[str]
    procs: list[tuple[str, subprocess.Popen[bytes]]]
    kubectl_bin: str
    admin: Path
    rendered: Path
    pins: dict[str, str]

    def up(self) -> None:
        self.procs = []
        self.tmp = tempfile.TemporaryDirectory()
        try:
            self._bring_up(Path(self.tmp.name))
        except BaseException:
            self.down()
            raise

    def _bring_up(self, tmp: Path) -> None:
        env = os.environ
        go_tools, cp_mod, cp_sum = env["GO_TOOLS_SH"], env["CP_GO_MOD"], env["CP_GO_SUM"]
        tools_mod, tools_sum = env["TOOLS_GO_MOD"], env["TOOLS_GO_SUM"]
        render_sh, overlay, tool_from_tars = (
            env["RENDER_SH"],
            env["PROD_OVERLAY"],
            env["TOOL_FROM_TARS_SH"],
        )
        pins, etcd_tars = env["PINS"].split(), env["ETCD_TARS"].split()
        self.pins = dict(p.split("=", 1) for p in pins)
        if not shutil.which("openssl"):
            raise RuntimeError(
                "openssl is needed for the test's certificates: apt-get install openssl"
            )

        start = time.monotonic()
        bins = Path(run(go_tools, cp_mod, cp_sum, timeout=3600).strip())
        TIMINGS["binaries (go_tools.sh; cold: a build)"] = time.monotonic() - start
        self.kubectl_bin = str(bins / "bin" / "kubectl")
        self.rendered = tmp / "prod.yaml"
        run(
            render_sh,
            go_tools,
            tools_mod,
            tools_sum,
            overlay,
            *pins,
            "--out",
            str(self.rendered),
            env={**os.environ, "OCI_REGISTRY": REGISTRY},
            timeout=1800,
        )
        etcd = run(tool_from_tars, str(tmp / "etcd-bin"), "usr/bin/etcd", *etcd_tars).strip()

        up = time.monotonic()
        certs = Certificates(tmp)
        api_port, etcd_port, peer_port = free_port(), free_port(), free_port()
        server = f"https://127.0.0.1:{api_port}"
        api_crt, api_key = certs.issue(
            "apiserver",
            "/CN=kube-apiserver",
            "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc",
        )
        self.admin = certs.kubeconfig("admin", "/O=system:masters/CN=admin", server)
        cm_config = certs.kubeconfig(
            "controller-manager", "/CN=system:kube-controller-manager", server
        )
        sched_config = certs.kubeconfig("scheduler", "/CN=system:kube-scheduler", server)
        TIMINGS["certificates"] = time.monotonic() - up

        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._start(
            "etcd",
            etcd,
            "--data-dir",
            str(tmp / "etcd"),
            "--listen-client-urls",
            etcd_url,
            "--advertise-client-urls",
            etcd_url,
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer_port}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{peer_port}",
            # A test's throwaway store: durability costs seconds here and buys nothing.
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
        )
        wait_for(
            "etcd /health",
            lambda: b'"true"' in http_request(f"{etcd_url}/health", timeout_s=2).body,
        )
        TIMINGS["etcd healthy"] = time.monotonic() - up

        self._start(
            "kube-apiserver",
            str(bins / "bin/kube-apiserver"),
            "--etcd-servers",
            etcd_url,
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            str(api_port),
            "--tls-cert-file",
            str(api_crt),
            "--tls-private-key-file",
            str(api_key),
            "--client-ca-file",
            str(certs.ca),
            "--service-account-issuer",
            "https://kubernetes.default.svc",
            "--service-account-key-file",
            str(tmp / "sa.pub"),
            "--service-account-signing-key-file",
            str(tmp / "sa.key"),
            "--authorization-mode",
            "RBAC,Node",
            "--enable-admission-plugins",
            "NodeRestriction",
            # No kube-proxy or kubelets to reconcile the kubernetes Service's endpoints against.
            "--endpoint-reconciler-type",
            "none",
            "--service-cluster-ip-range",
            "10.0.0.0/24",
            "--allow-privileged=false",
        )
        wait_for(
            "kube-apiserver /readyz",
            lambda: self.kubectl("get", "--raw", "/readyz").strip() == "ok",
            timeout=60,
        )
        TIMINGS["kube-apiserver ready"] = time.monotonic() - up

        self._start(
            "kube-controller-manager",
            str(bins / "bin/kube-controller-manager"),
            "--kubeconfig",
            str(cm_config),
            "--leader-elect=false",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            str(free_port()),
            "--service-account-private-key-file",
            str(tmp / "sa.key"),
            "--root-ca-file",
            str(certs.ca),
            "--use-service-account-credentials=true",
            "--cluster-cidr",
            "10.244.0.0/16",
            "--service-cluster-ip-range",
            "10.0.0.0/24",
            # The HPA acts within a second (default 15 s): the Go Deployment's count is its.
            "--horizontal-pod-autoscaler-sync-period=1s",
        )
        self._start(
            "kube-scheduler",
            str(bins / "bin/kube-scheduler"),
            "--kubeconfig",
            str(sched_config),
            "--leader-elect=false",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            str(free_port()),
        )
        self._start(
            "kwok",
            str(bins / "bin/kwok"),
            "--kubeconfig",
            str(self.admin),
            "--config",
            str(bins / "kwok-stages.yaml"),
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-ip=127.0.0.1",
            "--cidr=10.244.0.0/24",
            "--server-address",
            f"127.0.0.1:{free_port()}",
        )
        nodes = tmp / "nodes.json"
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
        self.kubectl("apply", "-f", str(nodes))
        wait_for(
            "kwok nodes Ready",
            lambda: all(
                any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n["status"].get("conditions", [])
                )
                for n in self.get("nodes")["items"]
            ),
        )
        # The namespace's default ServiceAccount: the controllers work.
        wait_for(
            "the controllers",
            lambda: self.kubectl("-n", "default", "get", "serviceaccount", "default"),
        )
        TIMINGS["control plane up, nodes Ready (bring-up)"] = time.monotonic() - up

    def _start(self, name: str, *cmd: str) -> None:
        log = (Path(self.tmp.name) / f"{name}.log").open("wb")
        self.procs.append((name, subprocess.Popen(cmd, stdout=log, stderr=log)))
        log.close()

    def down(self) -> None:
        failed = []
        for name, proc in reversed(self.procs):
            if proc.poll() is not None:
                failed.append(name)
            proc.terminate()
        for _name, proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # A component that died is the likeliest cause of any failure: show its log's end.
        for name in failed:
            log = (Path(self.tmp.name) / f"{name}.log").read_text(errors="replace")
            print(f"--- {name} exited early; its log ends:\n{log[-3000:]}", file=sys.stderr)
        for what, seconds in TIMINGS.items():
            print(f"timing: {what}: {seconds:.1f} s", file=sys.stderr)
        self.tmp.cleanup()

    def kubectl(self, *args: str, timeout: float = STEP_TIMEOUT_S) -> str:
        return run(self.kubectl_bin, "--kubeconfig", str(self.admin), *args, timeout=timeout)

    def apply_rendered(self, *flags: str) -> None:
        """Server-side applies the rendered prod overlay (idempotent)."""
        self.kubectl(
            "apply",
            "--server-side",
            "--field-manager",
            "control-plane-test",
            *flags,
            "-f",
            str(self.rendered),
        )

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", "-o", "json", *args))


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    control_plane = ControlPlane()
    control_plane.up()  # takes itself down again when it fails half-way
    try:
        yield control_plane
    finally:
        control_plane.down()


# First (pytest runs a module's tests in file order): the rolling update below sets the Go
# Deployment's image with `kubectl set image`, which a later server-side apply would conflict with.
def test_a_non_compliant_pod_is_refused(cp: ControlPlane) -> None:
    cp.apply_rendered()
    pod = Path(cp.tmp.name) / "root-pod.json"
    redis_digest = Path(cp.pins["redis"]).read_text().strip()
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
    proc = subprocess.run(
        [
            cp.kubectl_bin,
            "--kubeconfig",
            str(cp.admin),
            "apply",
            "--server-side",
            "-f",
            str(pod),
        ],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in proc.stderr
    assert "runAsNonRoot" in proc.stderr
    assert (
        cp.get("-n", NAMESPACE, "pods", "--field-selector", "metadata.name=runs-as-root")["items"]
        == []
    )


def test_prod_overlay_rolls_out_and_updates_under_restricted(cp: ControlPlane) -> None:
    start = time.monotonic()
    cp.apply_rendered()
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
    assert set(deployments) == set(cp.pins)
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
        digest = Path(cp.pins[name]).read_text().strip()
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


def test_a_sync_keeps_the_hpas_count(cp: ControlPlane) -> None:
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
    cp.apply_rendered("--force-conflicts")
    assert (
        cp.get("-n", NAMESPACE, "horizontalpodautoscaler", "go-service")["spec"]["minReplicas"] == 3
    )
    assert cp.get("-n", NAMESPACE, "deployment", "go-service")["spec"]["replicas"] == 5
