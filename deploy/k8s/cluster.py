"""A real Kubernetes control plane for deploy/k8s's tests: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler with their own CA, and kubectl as its admin.

control_plane_test runs it on loopback beside kwok's simulated nodes; node_test runs it inside
the namespaces of a real node (every command through `prefix`, an nsenter into them), where a
kubelet joins it. The binaries are go_tools.sh's build of controlplane/go.mod (once per machine);
etcd is trixie's etcd-server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tools.testing.python.support import free_port, http_request, wait_until

STEP_TIMEOUT_S = 120
# What each bring-up step took, printed when the cluster goes down (the test log's `timing:`
# lines; docs/timings.md quotes them).
TIMINGS: dict[str, float] = {}
SERVICE_CIDR = "10.0.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"


def run(*cmd: str, timeout: float = STEP_TIMEOUT_S, **kwargs: Any) -> str:
    """The command's stdout; its stderr in the error when it fails."""
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def wait_for(what: str, check: Callable[[], Any], timeout: float = STEP_TIMEOUT_S) -> Any:
    """wait_until with the step bound, every 0.2 s; a failing command (run's AssertionError,
    or its timeout) is "not yet" too, and named in the TimeoutError."""
    return wait_until(
        check,
        timeout,
        interval_s=0.2,
        what=what,
        retry_on=(OSError, AssertionError, subprocess.TimeoutExpired),
    )


def render(overlay: str, pins: list[str], registry: str, out: Path, secrets_out: Path) -> None:
    """render.sh of an overlay into out, every image pinned (NAME=DIGEST_FILE pairs) as
    REGISTRY/cache-platform/NAME@DIGEST, and the Secrets it names (generated) into secrets_out;
    the tools from the BUILD file's environment."""
    env = os.environ
    run(
        env["RENDER_SH"],
        env["GO_TOOLS_SH"],
        env["TOOLS_GO_MOD"],
        env["TOOLS_GO_SUM"],
        overlay,
        *pins,
        "--out",
        str(out),
        "--secrets-out",
        str(secrets_out),
        env={**env, "OCI_REGISTRY": registry},
        timeout=1800,
    )


def go_tools(go_tools_sh: str, go_mod: str, go_sum: str) -> Path:
    """The directory go_tools.sh built a module's tools into (bin/NAME); cold, a build."""
    return Path(run(go_tools_sh, go_mod, go_sum, timeout=3600).strip())


class Certificates:
    """A CA, serving certificates and client certificates, made with openssl."""

    def __init__(self, root: Path) -> None:
        if not shutil.which("openssl"):
            raise RuntimeError(
                "openssl is needed for the test's certificates: apt-get install openssl"
            )
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
        """(cert, key) for subject, signed by the CA; sans like "IP:127.0.0.1,DNS:localhost"
        make it a serving certificate, else it is a client one."""
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
    """The control plane's processes, their files and logs in `workdir`; kubectl as its admin.

    `address` is where the API server listens and what it advertises; `prefix` goes before every
    component's command and `client_prefix` (default: `prefix`) before kubectl's; `node` makes
    the API server one a kubelet can join (the `kubernetes` Service's endpoint kept by its lease,
    logs and exec through the kubelet).
    """

    def __init__(
        self,
        workdir: Path,
        bins: Path,
        etcd: str,
        address: str = "127.0.0.1",
        prefix: Sequence[str] = (),
        client_prefix: Sequence[str] | None = None,
        node: bool = False,
    ) -> None:
        self.workdir = workdir
        self.bins = bins
        self.etcd = etcd
        self.address = address
        self.prefix = list(prefix)
        self.client_prefix = list(prefix if client_prefix is None else client_prefix)
        self.node = node
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.kubectl_bin = str(bins / "bin" / "kubectl")
        self.server = ""
        self.certs: Certificates
        self.admin: Path

    def up(self) -> None:
        """Starts everything and waits for the controllers; takes itself down on failure."""
        try:
            self._bring_up()
        except BaseException:
            self.down()
            raise

    def _bring_up(self) -> None:
        tmp, bins = self.workdir, self.bins
        up = time.monotonic()
        self.certs = certs = Certificates(tmp)
        api_port, etcd_port, peer_port = free_port(), free_port(), free_port()
        self.server = f"https://{self.address}:{api_port}"
        api_crt, api_key = certs.issue(
            "apiserver",
            "/CN=kube-apiserver",
            f"IP:{self.address},IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc",
        )
        self.admin = certs.kubeconfig("admin", "/O=system:masters/CN=admin", self.server)
        cm_config = certs.kubeconfig(
            "controller-manager", "/CN=system:kube-controller-manager", self.server
        )
        sched_config = certs.kubeconfig("scheduler", "/CN=system:kube-scheduler", self.server)
        TIMINGS["certificates"] = time.monotonic() - up

        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.start(
            "etcd",
            self.etcd,
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
        if not self.prefix:  # else unreachable from here: the API server's /readyz checks it
            wait_for(
                "etcd /health",
                lambda: b'"true"' in http_request(f"{etcd_url}/health", timeout_s=2).body,
            )
            TIMINGS["etcd healthy"] = time.monotonic() - up

        if self.node:
            kubelet_client = certs.issue(
                "apiserver-kubelet-client", "/O=system:masters/CN=kubelet-client"
            )
            apiserver_flags = [
                "--kubelet-client-certificate",
                str(kubelet_client[0]),
                "--kubelet-client-key",
                str(kubelet_client[1]),
                "--kubelet-preferred-address-types",
                "InternalIP",
            ]
        else:
            # No kubelets or kube-proxy to reconcile the kubernetes Service's endpoints against.
            apiserver_flags = ["--endpoint-reconciler-type", "none"]
        self.start(
            "kube-apiserver",
            str(bins / "bin/kube-apiserver"),
            "--etcd-servers",
            etcd_url,
            "--bind-address",
            self.address,
            "--advertise-address",
            self.address,
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
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            "--allow-privileged=false",
            *apiserver_flags,
        )
        wait_for(
            "kube-apiserver /readyz",
            lambda: self.kubectl("get", "--raw", "/readyz").strip() == "ok",
            timeout=60,
        )
        TIMINGS["kube-apiserver ready"] = time.monotonic() - up

        self.start(
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
            CLUSTER_CIDR,
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            # The HPA acts within a second (default 15 s): the Go Deployment's count is its.
            "--horizontal-pod-autoscaler-sync-period=1s",
        )
        self.start(
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
        # A namespace's default ServiceAccount: the controllers work (no pod before it exists).
        wait_for(
            "the controllers",
            lambda: self.kubectl("-n", "default", "get", "serviceaccount", "default"),
        )
        TIMINGS["controllers working"] = time.monotonic() - up

    def start(self, name: str, *cmd: str) -> subprocess.Popen[bytes]:
        """Starts a component (through the prefix), its output in workdir/NAME.log."""
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen([*self.prefix, *cmd], stdout=log, stderr=log)
        log.close()
        self.procs.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def exited(self) -> list[str]:
        """The components that are no longer running."""
        return [name for name, proc in self.procs if proc.poll() is not None]

    def down(self, exited: list[str] | None = None) -> None:
        """Stops every component, newest first; shows the end of the log of any that had exited
        (`exited`, when the caller ended them all itself: what exited before it did)."""
        failed = self.exited() if exited is None else exited
        for _name, proc in reversed(self.procs):
            proc.terminate()
        for _name, proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # A component that died is the likeliest cause of any failure: show its log's end.
        for name in failed:
            print(
                f"--- {name} exited early; its log ends:\n{self.log(name)[-3000:]}", file=sys.stderr
            )
        for what, seconds in TIMINGS.items():
            print(f"timing: {what}: {seconds:.1f} s", file=sys.stderr)

    def kubectl(self, *args: str, timeout: float = STEP_TIMEOUT_S) -> str:
        return run(
            *self.client_prefix,
            self.kubectl_bin,
            "--kubeconfig",
            str(self.admin),
            *args,
            timeout=timeout,
        )

    def kubectl_proc(
        self, *args: str, timeout: float = STEP_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """kubectl's whole outcome, for a command expected to fail."""
        return subprocess.run(
            [*self.client_prefix, self.kubectl_bin, "--kubeconfig", str(self.admin), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", "-o", "json", *args))

    def apply(self, *manifests: Path, flags: tuple[str, ...] = ()) -> None:
        """Server-side applies manifests, in order (idempotent), as the tests' field manager."""
        files = [arg for m in manifests for arg in ("-f", str(m))]
        self.kubectl(
            "apply", "--server-side", "--field-manager", "cache-platform-test", *flags, *files
        )


def env_list(name: str) -> list[str]:
    """A space-separated list from the environment (the BUILD file's inputs)."""
    return os.environ[name].split()
