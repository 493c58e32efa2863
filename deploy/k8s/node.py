"""A real Kubernetes node for //deploy/k8s:node_test, in namespaces of its own.

One `unshare --mount --net --pid` (node_root.sh is its PID 1) holds everything: the control
plane (cluster.py) on the node's address, containerd (the tools/bazel sid root's 2.1, runc 1.3)
with Debian's CNI plugins (bridge, host-local, loopback, portmap), a kubelet, kube-proxy in
iptables mode, and CoreDNS as a process behind the `kube-dns` Service. Images are imported into
containerd from the Bazel-built OCI layouts under the names the digest-pinned render gives them,
so the node pulls nothing. Killing the namespace's PID 1 ends it all; what stays on the host is
undone: the three host-wide sysctls kubelet sets at start (recorded before, restored as soon as it
has set them) and the cgroups kubelet made under its own cgroupRoot (removed by down(); a killed
run's by the next run).

The recipes and their caveats (why pivot_root, why restrict_oom_score_adj, failCgroupV1):
deploy/README.md, "Kubernetes", "A real node in the test".
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from deploy.k8s.cluster import CLUSTER_CIDR, TIMINGS, ControlPlane, run, wait_for

T = TypeVar("T")

NODE_NAME = "node-0"
NODE_IP = "192.168.240.10"
NODE_CIDR = f"{NODE_IP}/24"
GATEWAY = "192.168.240.1"  # held by nothing: the default route's next hop
POD_CIDR = "10.244.0.0/24"
DNS_IP = "10.0.0.10"  # the kube-dns Service's ClusterIP (kubelet's clusterDNS)
# Host-wide sysctls kubelet writes once, at start, and the values it writes (no setting skips it;
# protectKernelDefaults only makes it refuse to start): restored as soon as it has written them.
KERNEL_FLAGS = {"vm/overcommit_memory": "1", "kernel/panic": "10", "kernel/panic_on_oops": "1"}
CGROUP = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "cache-platform-node-"
NODE_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Binaries:
    """What the node runs that its root (the sid chroot) does not have."""

    control_plane: Path  # go_tools.sh of controlplane/go.mod: bin/{kube-*,kubectl,kubelet}
    addons: Path  # go_tools.sh of addons/go.mod: bin/{coredns,kube-network-policies}
    etcd: str
    cni: Path  # bridge, host-local, loopback, portmap
    busybox: str  # for node_root.sh's `ip`


@dataclass(frozen=True)
class Image:
    """A Bazel-built OCI layout and the name pods give it (REGISTRY/...@DIGEST)."""

    layout: Path
    ref: str


class MachineLock:
    """One node test per machine at a time: the sysctls are host-wide, and a second test would
    record the first one's values as the ones to restore."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another node test holds {path}") from None
                time.sleep(1)

    def release(self) -> None:
        self.file.close()


class Node:
    """The node: up() starts it (and the control plane inside it), down() ends it."""

    def __init__(
        self,
        workdir: Path,
        bins: Binaries,
        node_root_sh: str,
        images: dict[str, Image],
        sandbox: Image,
        lock_path: Path,
    ) -> None:
        self.workdir = workdir
        self.bins = bins
        self.node_root_sh = node_root_sh
        self.images = images
        self.sandbox = sandbox
        self.lock_path = lock_path
        # Unique per run: two node tests' kubelets never share cgroups.
        self.cgroup_root = f"{CGROUP_PREFIX}{os.getpid()}"
        # The sysctls' values before kubelet ran, while a run has them changed.
        self.flags_file = lock_path.with_suffix(".kernel-flags.json")
        self.kernel_flags: dict[str, str] = {}
        self.lock: MachineLock | None = None
        self.ns: subprocess.Popen[bytes] | None = None
        self.pid1 = 0
        self.cp: ControlPlane
        self.ctr: list[str] = []
        self._net: ThreadPoolExecutor | None = None

    # --- bring-up --------------------------------------------------------------------------

    def up(self) -> None:
        try:
            self._bring_up()
        except BaseException:
            self.down()
            raise

    def _bring_up(self) -> None:
        start = time.monotonic()
        self.lock = MachineLock(self.lock_path, timeout_s=1800)
        self._clean_up_after_a_killed_run()
        self.kernel_flags = {f: (Path("/proc/sys") / f).read_text() for f in KERNEL_FLAGS}
        self.flags_file.write_text(json.dumps(self.kernel_flags))
        self._make_cgroup_root()
        state, rootfs = self.workdir / "state", self.workdir / "rootfs"
        state.mkdir(exist_ok=True)
        self.ns = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--net",
                "--pid",
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
                "bash",
                self.node_root_sh,
                self.bins.busybox,
                NODE_CIDR,
                GATEWAY,
                str(rootfs),
                str(state),
                str(self.bins.control_plane),
                str(self.bins.addons),
            ],
            stdout=(self.workdir / "node_root.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for("the node's namespaces", lambda: (state / "ready").exists() or self._ns_died(), 60)
        self._ns_died()
        # unshare --fork's child is PID 1 in the new namespace.
        children = Path(f"/proc/{self.ns.pid}/task/{self.ns.pid}/children").read_text().split()
        self.pid1 = int(children[0])
        # Every process of the node in all its namespaces, with the root's full PATH (kube-proxy
        # and the CNI plugins run iptables from /usr/sbin; a test's PATH may lack it).
        prefix = ["nsenter", "-t", str(self.pid1), "-m", "-n", "-p", "-r", "-w", "env", NODE_PATH]
        TIMINGS["node namespaces (network, overlay root)"] = time.monotonic() - start

        self.cp = ControlPlane(
            state / "control-plane",
            self.bins.control_plane,
            self.bins.etcd,
            address=NODE_IP,
            prefix=prefix,
            client_prefix=self.net_prefix,
            node=True,
        )
        self.cp.workdir.mkdir()
        self.cp.up()
        TIMINGS["control plane up (in the node)"] = time.monotonic() - start

        self._start_containerd(state)
        TIMINGS["containerd up, images imported"] = time.monotonic() - start
        self._start_kubelet(state)
        # kubelet sets them once, at start: once it has, the host gets its own values back (not
        # panicking on an oops) for the rest of the test.
        wait_for(
            "kubelet's kernel flags",
            lambda: all(
                (Path("/proc/sys") / flag).read_text().strip() == value
                for flag, value in KERNEL_FLAGS.items()
            ),
        )
        self.restore_kernel_flags()
        self._start_kube_proxy(state)
        self._start_dns(state)
        TIMINGS["node Ready, kube-proxy and DNS up (bring-up)"] = time.monotonic() - start

    @property
    def net_prefix(self) -> list[str]:
        """nsenter into the node's network only: a host program (kubectl, loadgen) talking to it."""
        return ["nsenter", "-t", str(self.pid1), "-n"]

    def _ns_died(self) -> bool:
        assert self.ns is not None
        if self.ns.poll() is not None:
            log = (self.workdir / "node_root.log").read_text(errors="replace")
            raise RuntimeError(f"node_root.sh exited {self.ns.returncode}: {log[-2000:]}")
        return False

    def _make_cgroup_root(self) -> None:
        # kubelet requires its cgroupRoot in every hierarchy; cpuset's needs cpus and mems first.
        for hierarchy in CGROUP.iterdir():
            if hierarchy.is_dir() and (hierarchy / "cgroup.procs").exists():
                mine = hierarchy / self.cgroup_root
                mine.mkdir(exist_ok=True)
                if hierarchy.name == "cpuset":
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        (mine / f).write_text((hierarchy / f).read_text())

    def _start_containerd(self, state: Path) -> None:
        sock = state / "containerd" / "c.sock"
        (state / "cni").mkdir()
        (state / "cni" / "10-bridge.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "node",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "cni0",
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(state / "cni-ipam"),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                }
            )
        )
        config = state / "containerd.toml"
        cri = "plugins.'io.containerd.cri.v1.runtime'"
        config.write_text(
            f"""version = 3
root = '{state}/containerd/root'
state = '{state}/containerd/state'
[grpc]
  address = '{sock}'
[ttrpc]
  address = ''
[debug]
  address = ''
[{cri}]
  # This machine's capability bounding set lacks CAP_SYS_RESOURCE: a sandbox asking for an
  # oom_score_adj below the current one fails to start (EACCES) unless it is clamped.
  restrict_oom_score_adj = true
  # The kernel has no AppArmor.
  disable_apparmor = true
  [{cri}.containerd]
    default_runtime_name = 'runc'
    [{cri}.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dirs = ['{self.bins.cni}']
    conf_dir = '{state}/cni'
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '{self.sandbox.ref}'
"""
        )
        self.cp.start("containerd", "containerd", "--config", str(config))
        self.ctr = ["ctr", "--address", str(sock), "--namespace", "k8s.io"]
        wait_for("containerd", lambda: run(*self.cp.prefix, *self.ctr, "version", timeout=10))
        for image in [self.sandbox, *self.images.values()]:
            self.import_image(image)

    def import_image(self, image: Image) -> None:
        """Imports an OCI layout under image.ref; containerd then knows it by that name and by
        its manifest digest, which must be the one the ref names."""
        archive = self.workdir / "state" / "images" / (image.layout.name + ".tar")
        archive.parent.mkdir(exist_ok=True)
        write_oci_archive(image.layout, image.ref, archive)
        run(*self.cp.prefix, *self.ctr, "images", "import", str(archive), timeout=300)
        listed = run(*self.cp.prefix, *self.ctr, "images", "list", f"name=={image.ref}")
        digest = image.ref.rsplit("@", 1)[1]
        assert digest in listed, f"{image.ref} not imported by its digest: {listed}"
        archive.unlink()

    def _start_kubelet(self, state: Path) -> None:
        certs, cp = self.cp.certs, self.cp
        kubeconfig = certs.kubeconfig(
            "kubelet", f"/O=system:nodes/CN=system:node:{NODE_NAME}", cp.server
        )
        (state / "resolv.conf").write_text("")  # pods get the cluster DNS only
        config = state / "kubelet.yaml"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    # This machine has cgroup v1 (hybrid); kubelet 1.35+ refuses it by default.
                    "failCgroupV1": False,
                    "cgroupDriver": "cgroupfs",
                    "cgroupRoot": "/" + self.cgroup_root,
                    "containerRuntimeEndpoint": f"unix://{state}/containerd/c.sock",
                    "podLogsDir": str(state / "pod-logs"),
                    "authentication": {
                        "anonymous": {"enabled": True},
                        "webhook": {"enabled": False},
                        "x509": {"clientCAFile": str(certs.ca)},
                    },
                    "authorization": {"mode": "AlwaysAllow"},
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "failSwapOn": False,
                    # A test node never evicts or garbage-collects its imported images.
                    "evictionHard": {
                        "memory.available": "100Mi",
                        "nodefs.available": "1%",
                        "imagefs.available": "1%",
                        "nodefs.inodesFree": "1%",
                    },
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "clusterDNS": [DNS_IP],
                    "clusterDomain": "cluster.local",
                    "resolvConf": str(state / "resolv.conf"),
                    "serializeImagePulls": False,
                }
            )
        )
        cp.start(
            "kubelet",
            str(self.bins.control_plane / "bin/kubelet"),
            "--config",
            str(config),
            "--kubeconfig",
            str(kubeconfig),
            "--root-dir",
            str(state / "kubelet"),
            "--cert-dir",
            str(state / "kubelet-pki"),
            "--hostname-override",
            NODE_NAME,
            "--node-ip",
            NODE_IP,
        )
        wait_for(
            f"node {NODE_NAME} Ready",
            lambda: any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in cp.get("node", NODE_NAME)["status"].get("conditions", [])
            ),
        )

    def _start_kube_proxy(self, state: Path) -> None:
        kubeconfig = self.cp.certs.kubeconfig("kube-proxy", "/CN=system:kube-proxy", self.cp.server)
        config = state / "kube-proxy.yaml"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "mode": "iptables",
                    "clusterCIDR": CLUSTER_CIDR,
                    "hostnameOverride": NODE_NAME,
                    "clientConnection": {"kubeconfig": str(kubeconfig)},
                    # Zero: leave the host-wide nf_conntrack_max and timeouts alone.
                    "conntrack": {
                        "maxPerCore": 0,
                        "min": 0,
                        "tcpEstablishedTimeout": "0s",
                        "tcpCloseWaitTimeout": "0s",
                    },
                    "metricsBindAddress": "127.0.0.1:10249",
                    "healthzBindAddress": "127.0.0.1:10256",
                }
            )
        )
        self.cp.start(
            "kube-proxy", str(self.bins.control_plane / "bin/kube-proxy"), "--config", str(config)
        )

    def _start_dns(self, state: Path) -> None:
        """CoreDNS on the node's address (there is no CoreDNS image here), behind the
        kube-system/kube-dns Service as a cluster's DNS is: kubelet points pods at its
        ClusterIP, and Nginx resolves it by name."""
        corefile = state / "Corefile"
        corefile.write_text(
            f""".:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {self.cp.admin}
        pods insecure
    }}
    cache 30
}}
"""
        )
        self.cp.start("coredns", str(self.bins.addons / "bin/coredns"), "-conf", str(corefile))
        ports = [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        ]
        service = state / "kube-dns.json"
        service.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": [
                        {
                            "apiVersion": "v1",
                            "kind": "Service",
                            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
                            "spec": {"clusterIP": DNS_IP, "ports": ports},
                        },
                        {
                            "apiVersion": "discovery.k8s.io/v1",
                            "kind": "EndpointSlice",
                            "metadata": {
                                "name": "kube-dns-node",
                                "namespace": "kube-system",
                                "labels": {"kubernetes.io/service-name": "kube-dns"},
                            },
                            "addressType": "IPv4",
                            "endpoints": [{"addresses": [NODE_IP], "nodeName": NODE_NAME}],
                            "ports": ports,
                        },
                    ],
                }
            )
        )
        self.cp.apply(service)
        # DNS answers through the Service (kube-proxy's rules are in) for a name only the
        # kubernetes plugin knows.
        wait_for(
            "cluster DNS through the kube-dns Service",
            lambda: (
                "10.0.0.1"
                in run(
                    *self.cp.prefix,
                    self.bins.busybox,
                    "nslookup",
                    "kubernetes.default.svc.cluster.local",
                    DNS_IP,
                    timeout=10,
                )
            ),
        )

    def start_network_policy_enforcer(self) -> Enforcer:
        """SIG Network's kube-network-policies on the node, as its DaemonSet would run it: its
        own ServiceAccount (read pods, namespaces, nodes and NetworkPolicies) and in-cluster
        config (the token and CA at the fixed path, the API server in the environment)."""
        state = self.workdir / "state"
        read = ["get", "list", "watch"]
        rbac = state / "kube-network-policies.json"
        rbac.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": [
                        {
                            "apiVersion": "v1",
                            "kind": "ServiceAccount",
                            "metadata": {
                                "name": "kube-network-policies",
                                "namespace": "kube-system",
                            },
                        },
                        {
                            "apiVersion": "rbac.authorization.k8s.io/v1",
                            "kind": "ClusterRole",
                            "metadata": {"name": "kube-network-policies"},
                            "rules": [
                                {
                                    "apiGroups": [""],
                                    "resources": ["pods", "namespaces", "nodes"],
                                    "verbs": read,
                                },
                                {
                                    "apiGroups": ["networking.k8s.io"],
                                    "resources": ["networkpolicies"],
                                    "verbs": read,
                                },
                            ],
                        },
                        {
                            "apiVersion": "rbac.authorization.k8s.io/v1",
                            "kind": "ClusterRoleBinding",
                            "metadata": {"name": "kube-network-policies"},
                            "roleRef": {
                                "apiGroup": "rbac.authorization.k8s.io",
                                "kind": "ClusterRole",
                                "name": "kube-network-policies",
                            },
                            "subjects": [
                                {
                                    "kind": "ServiceAccount",
                                    "name": "kube-network-policies",
                                    "namespace": "kube-system",
                                }
                            ],
                        },
                    ],
                }
            )
        )
        self.cp.apply(rbac)
        account = state / "kube-network-policies-account"
        account.mkdir()
        (account / "token").write_text(
            self.cp.kubectl(
                "-n", "kube-system", "create", "token", "kube-network-policies", "--duration=2h"
            ).strip()
        )
        (account / "ca.crt").write_text(self.cp.certs.ca.read_text())
        # /var/run is /run, a tmpfs of the node's own.
        link = "/run/secrets/kubernetes.io/serviceaccount"
        run(
            *self.cp.prefix,
            "sh",
            "-c",
            'mkdir -p "${2%/*}" && ln -s "$1" "$2"',
            "sh",
            str(account),
            link,
        )
        port = self.cp.server.rsplit(":", 1)[1]
        self.cp.start(
            "kube-network-policies",
            "env",
            f"KUBERNETES_SERVICE_HOST={NODE_IP}",
            f"KUBERNETES_SERVICE_PORT={port}",
            str(self.bins.addons / "bin/kube-network-policies"),
            "--hostname-override",
            NODE_NAME,
            "--disable-nri",
            "--metrics-bind-address",
            "127.0.0.1:9080",
            "--v",
            "2",
        )
        return Enforcer(self.cp)

    # --- using it ----------------------------------------------------------------------------

    def net(self, fn: Callable[..., T], *args: Any, timeout: float = 60) -> T:
        """fn(*args) called on a thread inside the node's network namespace (setns is per
        thread): the test's own HTTP client, talking to pod and Service addresses."""
        if self._net is None:
            self._net = ThreadPoolExecutor(1, initializer=_enter_netns, initargs=(self.pid1,))
        return self._net.submit(fn, *args).result(timeout)

    # --- tear-down ---------------------------------------------------------------------------

    def down(self) -> None:
        """Kills the namespaces first (one SIGKILL ends every process in them at once), then
        undoes what stays on the host. Fast on purpose: a test stopped by Bazel's timeout gets a
        few seconds between SIGTERM and SIGKILL."""
        if self._net is not None:
            self._net.shutdown(wait=False, cancel_futures=True)
        exited = self.cp.exited() if hasattr(self, "cp") else []
        if self.ns is not None and self.ns.poll() is None:
            # --kill-child: unshare's child (PID 1) dies with it, and the kernel kills every
            # process of the PID namespace (shims and containers included).
            self.ns.send_signal(signal.SIGKILL)
            self.ns.wait()
        self.restore_kernel_flags()
        if hasattr(self, "cp"):
            self.cp.down(exited)
        remove_cgroups(self.cgroup_root)
        if self.lock is not None:
            self.lock.release()

    def restore_kernel_flags(self) -> None:
        """Puts back the host-wide sysctls kubelet changed (it sets them once, at start)."""
        for flag, value in self.kernel_flags.items():
            (Path("/proc/sys") / flag).write_text(value)
        self.flags_file.unlink(missing_ok=True)

    def _clean_up_after_a_killed_run(self) -> None:
        """A run killed outright (SIGKILL: no down()) left the sysctls it recorded and its cgroups
        behind; under the lock, before recording anything, put them right."""
        if self.flags_file.exists():
            for flag, value in json.loads(self.flags_file.read_text()).items():
                (Path("/proc/sys") / flag).write_text(value)
            self.flags_file.unlink()
        stale = {
            d.name for h in CGROUP.iterdir() for d in h.glob(f"{CGROUP_PREFIX}*") if d.is_dir()
        }
        for name in stale:
            remove_cgroups(name)


def remove_cgroups(cgroup_root: str) -> None:
    """Removes the cgroup tree under cgroup_root in every hierarchy, deepest first, once the
    killed processes have left it."""

    def remove() -> bool:
        left = []
        for hierarchy in CGROUP.iterdir():
            mine = hierarchy / cgroup_root
            if not mine.is_dir():
                continue
            for d in sorted(
                (p for p in mine.rglob("*") if p.is_dir()),
                key=lambda p: len(p.parts),
                reverse=True,
            ):
                try:
                    d.rmdir()
                except OSError:
                    left.append(d)
            try:
                mine.rmdir()
            except OSError:
                left.append(mine)
        return not left

    wait_for(f"the node's cgroups (/{cgroup_root}) removed", remove, timeout=60)


class Enforcer:
    """kube-network-policies' progress, from its log."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def syncing(self) -> bool:
        """Whether it has begun syncing its nftables rules."""
        return "Syncing nftables rules" in self.cp.log("kube-network-policies")

    def error(self) -> str | None:
        """Its failed sync's error: the whole klog entry (a multi-line value runs from `error=<`
        to a line holding `>`), or None."""
        lines = self.cp.log("kube-network-policies").splitlines()
        for i, line in enumerate(lines):
            if "syncing nftables rules" in line and "error=" in line:
                entry = [line]
                if line.endswith("error=<"):
                    for more in lines[i + 1 :]:
                        entry.append(more.strip())
                        if more.strip() == ">":
                            break
                return " ".join(entry)
        return None


def _enter_netns(pid: int) -> None:
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        os.setns(fd, os.CLONE_NEWNET)
    finally:
        os.close(fd)


def write_oci_archive(layout: Path, ref: str, out: Path) -> None:
    """A tar of the OCI layout whose index names its manifest `ref`
    (io.containerd.image.name): `ctr images import` then creates the image under that name."""
    index = json.loads((layout / "index.json").read_text())
    for manifest in index["manifests"]:
        manifest.setdefault("annotations", {})["io.containerd.image.name"] = ref
    data = json.dumps(index).encode()
    with tarfile.open(out, "w") as tar:
        for path in sorted(layout.rglob("*")):
            name = str(path.relative_to(layout))
            if name == "index.json":
                info = tarfile.TarInfo("index.json")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.add(path, arcname=name, recursive=False)
