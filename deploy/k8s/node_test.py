"""The prod overlay's pods running this repo's images on a real node, serving traffic, surviving a
rollout and a pod deletion under load.

The node (node.py): a control plane, containerd with runc and Debian's CNI plugins, a kubelet,
kube-proxy (iptables) and CoreDNS, all in namespaces of the test's own. The manifests: the prod
overlay rendered with every image pinned by digest, through overlays/node-test (fewer replicas for
a 2-CPU machine, nothing else changed), server-side applied. What it requires:
- every pod Running and Ready by its real probes, under the namespace's PodSecurity "restricted",
  from its pinned image (kubelet reports the digest);
- the same /go/time from every Go pod (the shared Redis tier), and through the Nginx Service;
  Nginx's cache answering the second /python/time (X-Cache-Status: HIT);
- Prometheus scraping every annotated pod, found through the API server, and an alert (a target
  that does not answer: ServiceDown) reaching Alertmanager and its receiver;
- a rolling update of the Go and Python Deployments to new digests, and the deletion of a Go, a
  Python and an Nginx pod, each under steady load through the Nginx Service: no request failed;
- a NetworkPolicy enforced by kube-network-policies; where the kernel cannot (no nft queue
  support), the test says so with the enforcer's own error.

Root only, and it changes three host-wide sysctls while it runs (restored after; deploy/README.md).
Inputs, from the BUILD file, in the environment: GO_TOOLS_SH, CP_GO_MOD, CP_GO_SUM,
ADDONS_GO_MOD, ADDONS_GO_SUM, TOOLS_GO_MOD, TOOLS_GO_SUM, RENDER_SH, OVERLAY, TOOL_FROM_TARS_SH,
ETCD_TARS, CNI_TARS, BUSYBOX_TARS, NODE_ROOT_SH, OCITOOL, LOADGEN, IMAGES (NAME=LAYOUT=DIGEST_FILE
triples) and SANDBOX (LAYOUT=DIGEST_FILE), lists space-separated.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.k8s.cluster import (
    STEP_TIMEOUT_S,
    TIMINGS,
    env_list,
    go_tools,
    render,
    run,
    wait_for,
)
from deploy.k8s.node import NODE_NAME, Binaries, Image, Node
from tools.testing.python.support import http_request

NAMESPACE = "cache-platform"
REGISTRY = "127.0.0.1:5000/cp-test"  # a name only: the node imports the images, pulls nothing
ROLLOUT_TIMEOUT_S = 300
# The load during a rollout or a deletion: steady, well under what the node serves, through the
# Nginx Service to a route of each app that every request reaches the app on: Nginx caches no /go/
# route, and of /python/ only /python/time and /python/static-text (nginx.conf's
# $python_uncacheable).
LOAD_RATE = 40
LOAD_PATHS = ("/go/time", "/python/")


def tool(tars_var: str, path: str, into: Path) -> str:
    return run(os.environ["TOOL_FROM_TARS_SH"], str(into), path, *env_list(tars_var)).strip()


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    env = os.environ
    # A Bazel timeout sends SIGTERM: tear the node down (sysctls, cgroups) rather than vanish.
    signal.signal(signal.SIGTERM, _interrupt)
    # Short: containerd's and kubelet's unix socket paths live under it (108 bytes at most).
    workdir = Path(tempfile.mkdtemp(prefix="k8s-node-", dir="/tmp"))
    tools = workdir / "state" / "tools"
    tools.mkdir(parents=True)
    start = time.monotonic()
    bins = Binaries(
        control_plane=go_tools(env["GO_TOOLS_SH"], env["CP_GO_MOD"], env["CP_GO_SUM"]),
        addons=go_tools(env["GO_TOOLS_SH"], env["ADDONS_GO_MOD"], env["ADDONS_GO_SUM"]),
        etcd=tool("ETCD_TARS", "usr/bin/etcd", tools),
        cni=Path(tool("CNI_TARS", "usr/lib/cni/bridge", tools)).parent,
        busybox=tool("BUSYBOX_TARS", "usr/bin/busybox", tools),
    )
    for plugin in ("host-local", "loopback", "portmap"):
        tool("CNI_TARS", f"usr/lib/cni/{plugin}", tools)
    TIMINGS["binaries (go_tools.sh; cold: a build)"] = time.monotonic() - start

    images, pins = {}, []
    for triple in env_list("IMAGES"):
        name, layout, digest_file = triple.split("=")
        digest = Path(digest_file).read_text().strip()
        images[name] = Image(Path(layout), f"{REGISTRY}/cache-platform/{name}@{digest}")
        pins.append(f"{name}={digest_file}")
    layout, digest_file = env["SANDBOX"].split("=")
    sandbox_digest = Path(digest_file).read_text().strip()
    sandbox = Image(Path(layout), f"{REGISTRY}/cache-platform/sandbox@{sandbox_digest}")
    render(env["OVERLAY"], pins, REGISTRY, *rendered_manifests(workdir))
    lock = Path(env.get("CACHE_PLATFORM_CACHE_DIR", "/tmp")) / "output" / "k8s-node-test.lock"
    the_node = Node(workdir, bins, env["NODE_ROOT_SH"], images, sandbox, lock)
    the_node.up()
    try:
        print(f"node: {NODE_NAME}, {run('uname', '-r').strip()}", file=sys.stderr)
        yield the_node
    finally:
        the_node.down()
        shutil.rmtree(workdir, ignore_errors=True)


def rendered_manifests(workdir: Path) -> tuple[Path, Path]:
    """Where the fixture renders the overlay, pinned, and its Secrets."""
    return workdir / "state" / "rendered.yaml", workdir / "state" / "secrets.yaml"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pods(node: Node, app: str) -> list[dict[str, Any]]:
    """The app's pods that are not terminating."""
    return [
        p
        for p in node.cp.get("-n", NAMESPACE, "pods", "-l", f"app.kubernetes.io/name={app}")[
            "items"
        ]
        if not p["metadata"].get("deletionTimestamp")
    ]


def service_ip(node: Node, name: str) -> str:
    return node.cp.get("-n", NAMESPACE, "service", name)["spec"]["clusterIP"]


def rollout(node: Node, deployment: str) -> None:
    node.cp.kubectl(
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        f"deployment/{deployment}",
        f"--timeout={ROLLOUT_TIMEOUT_S}s",
        timeout=ROLLOUT_TIMEOUT_S + 10,
    )


# First (pytest runs a module's tests in file order): the others need the stack up.
def test_every_pod_runs_ready_under_restricted_from_its_pinned_image(node: Node) -> None:
    start = time.monotonic()
    node.cp.apply(*rendered_manifests(node.workdir))  # as deploy/README.md: manifests, then Secrets
    labels = node.cp.get("namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    hpa = node.cp.get("-n", NAMESPACE, "horizontalpodautoscaler", "go-service")
    wait_for(
        "the HPA's count on the Go Deployment",
        lambda: (
            node.cp.get("-n", NAMESPACE, "deployment", "go-service")["spec"]["replicas"]
            == hpa["spec"]["minReplicas"]
        ),
    )
    deployments = {
        d["metadata"]["name"]: d for d in node.cp.get("-n", NAMESPACE, "deployments")["items"]
    }
    assert set(deployments) == set(node.images)
    for name in deployments:
        rollout(node, name)
    TIMINGS["apply + every Deployment rolled out on the node"] = time.monotonic() - start
    for name, d in deployments.items():
        mine = pods(node, name)
        assert len(mine) == node.cp.get("-n", NAMESPACE, "deployment", name)["spec"]["replicas"]
        for pod in mine:
            [status] = pod["status"]["containerStatuses"]
            ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
            assert pod["status"]["phase"] == "Running", pod["metadata"]["name"]
            assert ready["Ready"] == "True", pod["metadata"]["name"]
            assert pod["spec"]["nodeName"] == NODE_NAME
            assert pod["spec"]["containers"][0]["image"] == node.images[name].ref
            # What kubelet ran: the digest the render pinned.
            assert status["imageID"].endswith(node.images[name].ref.rsplit("@", 1)[1]), status
            assert d["spec"]["template"]["spec"]["containers"][0]["securityContext"][
                "readOnlyRootFilesystem"
            ]
            print(
                f"pod {pod['metadata']['name']} on {pod['spec']['nodeName']}: "
                f"{status['image']} ({status['imageID']}), ready",
                file=sys.stderr,
            )


def test_every_go_pod_answers_the_same_time(node: Node) -> None:
    # The shared Redis tier: one fill per TTL for the whole tier. Asked pod by pod, all answer
    # the same value; a value can expire between two asks, so a differing round is asked again.
    addresses = [p["status"]["podIP"] for p in pods(node, "go-service")]
    assert len(addresses) >= 2
    rounds = []
    for _ in range(3):
        answers = {ip: node.net(http_request, f"http://{ip}:8080/time").text for ip in addresses}
        rounds.append(answers)
        if len(set(answers.values())) == 1:
            break
    assert len(set(rounds[-1].values())) == 1, rounds

    # Nginx learns the ready pods from the cluster DNS, which answers "none" while they start and
    # may keep that answer for its 5 s TTL: the fallback's 502 until then, 200 after.
    def through_nginx() -> Any:
        answer = node.net(http_request, f"http://{service_ip(node, 'nginx')}/go/time")
        assert answer.status == 200, answer
        return answer

    answer = wait_for("Nginx to send /go/time to the Go pods", through_nginx, timeout=60)
    assert answer.headers.get("X-Cache") in ("HIT", "MISS")


def test_nginx_caches_python_time(node: Node) -> None:
    nginx = service_ip(node, "nginx")
    assert node.net(http_request, f"http://{nginx}/python/time").status == 200
    # Each Nginx pod has its own cache: ask each one twice.
    for pod in pods(node, "nginx"):
        url = f"http://{pod['status']['podIP']}:8080/python/time"
        node.net(http_request, url)
        second = node.net(http_request, url)
        assert second.status == 200
        assert second.headers.get("X-Cache-Status") == "HIT", second.headers


def api_proxy(node: Node, service: str, path: str) -> Any:
    """GET path of a Service of the namespace through the API server's proxy, as JSON."""
    raw = node.cp.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{NAMESPACE}/services/{service}/proxy{path}"
    )
    return json.loads(raw)


def test_prometheus_scrapes_every_pod_it_discovers(node: Node) -> None:
    expected: dict[str, int] = {"prometheus": 1}
    for d in node.cp.get("-n", NAMESPACE, "deployments")["items"]:
        annotations = d["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            expected[d["metadata"]["name"]] = d["spec"]["replicas"]
    assert set(expected) == {
        "go-service",
        "py-service",
        "nginx",
        "alertmanager",
        "prometheus",
    }

    def scraped() -> dict[str, int] | None:
        targets = api_proxy(node, "prometheus:9090", "/api/v1/targets")["data"]["activeTargets"]
        up: dict[str, int] = {}
        for t in targets:
            if t["health"] == "up":
                up[t["labels"]["job"]] = up.get(t["labels"]["job"], 0) + 1
        return up if up == expected else None

    up = wait_for("every pod scraped and up", scraped, timeout=STEP_TIMEOUT_S)
    print(f"prometheus: targets up by job: {up}", file=sys.stderr)


def test_an_alert_reaches_alertmanager_and_its_receiver(node: Node) -> None:
    # A pod Prometheus discovers but cannot scrape (nothing listens on its port): ServiceDown.
    pod = Path(node.workdir) / "state" / "unscrapable.json"
    pod.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "unscrapable",
                    "namespace": NAMESPACE,
                    "labels": {"app.kubernetes.io/name": "unscrapable"},
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9"},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "idle",
                            "image": node.sandbox.ref,
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            }
        )
    )
    node.cp.apply(pod)
    try:

        def alert() -> list[dict[str, Any]]:
            alerts = api_proxy(node, "alertmanager:9093", "/api/v2/alerts")
            return [
                a
                for a in alerts
                if a["labels"].get("alertname") == "ServiceDown"
                and a["labels"].get("job") == "unscrapable"
            ]

        # `for: 30s`, a 5 s scrape and evaluation interval, then the send.
        [firing] = wait_for("ServiceDown at Alertmanager", alert, timeout=180)
        print(f"alertmanager: {json.dumps(firing['labels'])}", file=sys.stderr)

        # Alertmanager's receiver (the base's: Nginx's log), after its 5 s group_wait.
        def delivered() -> bool:
            logs = node.cp.kubectl("-n", NAMESPACE, "logs", "-l", "app.kubernetes.io/name=nginx")
            return '"alertname":"ServiceDown"' in logs and "unscrapable" in logs

        wait_for("the notification in Nginx's log (the receiver)", delivered, timeout=120)
    finally:
        node.cp.kubectl("-n", NAMESPACE, "delete", "pod", "unscrapable", "--wait=false")


class Load:
    """loadgen inside the node's network, open loop, through the Nginx Service, until stop()."""

    def __init__(self, node: Node, what: str) -> None:
        self.what = what
        nginx = service_ip(node, "nginx")
        self.proc = subprocess.Popen(
            [
                *node.net_prefix,
                os.environ["LOADGEN"],
                f"-rate={LOAD_RATE}",
                "-connections=8",
                "-duration=10m",
                "-timeout=10s",
                *(f"http://{nginx}{p}" for p in LOAD_PATHS),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGINT)
        report = json.loads(self.proc.communicate(timeout=60)[0])
        print(
            f"{self.what}: {report['requests']} requests sent, {report['failed']} failed, "
            f"{report['not_connected']} not connected, status {report['status']}, "
            f"errors {report['errors']}",
            file=sys.stderr,
        )
        return report


def assert_no_request_lost(report: dict[str, Any]) -> None:
    assert report["requests"] > LOAD_RATE * 10, report  # the load ran throughout
    assert report["failed"] == 0, report
    assert report["not_connected"] == 0, report
    assert set(report["status"]) == {"200"}, report


def gone(node: Node, names: set[str]) -> bool:
    left = {p["metadata"]["name"] for p in node.cp.get("-n", NAMESPACE, "pods")["items"]}
    return not names & left


def test_a_rolling_update_loses_no_request(node: Node) -> None:
    # A new build of each app: the same image with another label, so another digest.
    new = {}
    for app in ("go-service", "py-service"):
        out = Path(node.workdir) / "state" / f"{app}-next"
        digest = run(
            os.environ["OCITOOL"],
            "image",
            "--base",
            str(node.images[app].layout),
            "--label",
            "org.opencontainers.image.revision=next",
            "--out",
            str(out),
        ).strip()
        new[app] = Image(out, f"{REGISTRY}/cache-platform/{app}@{digest}")
        assert new[app].ref != node.images[app].ref
        node.import_image(new[app])
    old = {p["metadata"]["name"] for app in new for p in pods(node, app)}
    load = Load(node, "rolling update")
    try:
        time.sleep(3)  # steady load first
        for app, image in new.items():
            node.cp.kubectl(
                "-n", NAMESPACE, "set", "image", f"deployment/{app}", f"{app}={image.ref}"
            )
        for app in new:
            rollout(node, app)
        # Every old pod through its pause and drain: the load covers their whole stop.
        wait_for("the old pods gone", lambda: gone(node, old), timeout=ROLLOUT_TIMEOUT_S)
        time.sleep(2)
    finally:
        report = load.stop()
    for app, image in new.items():
        assert {p["spec"]["containers"][0]["image"] for p in pods(node, app)} == {image.ref}
    assert_no_request_lost(report)


def test_deleting_a_pod_loses_no_request(node: Node) -> None:
    # One pod of each serving tier, Nginx's too: the load's own keep-alive connections end on
    # one of them.
    tiers = ("go-service", "py-service", "nginx")
    victims = {pods(node, app)[0]["metadata"]["name"] for app in tiers}
    load = Load(node, "pod deletion")
    try:
        time.sleep(3)
        node.cp.kubectl("-n", NAMESPACE, "delete", "pod", *victims, "--wait=false")
        wait_for("the deleted pods gone", lambda: gone(node, victims), timeout=ROLLOUT_TIMEOUT_S)
        for app in tiers:
            rollout(node, app)
        time.sleep(2)
    finally:
        report = load.stop()
    assert_no_request_lost(report)


def probe(node: Node, pod: str, url: str) -> bool:
    """Whether the pod's image's health probe (/usr/local/bin/probe, in every HTTP image) gets
    a 2xx from url: an exec in the pod, so the connection is the pod's own."""
    proc = node.cp.kubectl_proc(
        "-n", NAMESPACE, "exec", pod, "--", "/usr/local/bin/probe", url, timeout=30
    )
    return proc.returncode == 0


def kernel_config(option: str) -> str | None:
    """The running kernel's value for option (y, m, "is not set"), None when unknown."""
    try:
        with gzip.open("/proc/config.gz", "rt") as config:
            for line in config:
                if line.startswith(f"{option}=") or line.startswith(f"# {option} is not set"):
                    return line.strip()
    except OSError:
        return None
    return None


def test_a_network_policy_is_enforced(node: Node) -> None:
    alertmanager = pods(node, "alertmanager")[0]["metadata"]["name"]
    nginx = pods(node, "nginx")[0]["metadata"]["name"]
    go_pod = pods(node, "go-service")[0]["status"]["podIP"]
    healthz = f"http://{go_pod}:8080/healthz"
    # No enforcer yet: the bridge plugin lets every flow through, the denied one too
    # (Alertmanager may reach only Nginx's metrics port; the Go pods take only Nginx and
    # Prometheus).
    assert probe(node, nginx, healthz)
    assert probe(node, alertmanager, healthz)

    enforcer = node.start_network_policy_enforcer()

    # Whichever comes first, each an event: its sync fails (logged), or the denied flow stops.
    def outcome() -> str | None:
        if error := enforcer.error():
            return error
        if enforcer.syncing() and not probe(node, alertmanager, healthz):
            return "enforced"
        return None

    result = wait_for("kube-network-policies to fail or deny Alertmanager -> a Go pod", outcome)
    if result != "enforced":
        # Its rules hand packets to userspace with nftables' `queue` statement, which needs the
        # kernel's nft_queue (CONFIG_NFT_QUEUE); xt NFQUEUE (iptables) is not what it uses.
        nft_queue = kernel_config("CONFIG_NFT_QUEUE")
        message = f"kube-network-policies cannot enforce here: {result} (kernel: {nft_queue})"
        print(message, file=sys.stderr)
        if nft_queue == "# CONFIG_NFT_QUEUE is not set":
            pytest.skip(message)
        pytest.fail(message)
    assert probe(node, nginx, healthz)  # the allowed flow still flows
