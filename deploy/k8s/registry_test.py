"""Every image the Kubernetes manifests run, pushed by its oci_push target to a real registry and
pulled back by digest: the digest each push prints is the one Bazel built (NAME.digest, what the
pinned render names), and the manifest and every blob pulled by digest are the built bytes.

The registry is Debian's docker-registry (the CNCF distribution registry, pinned in
tools/rules/debian/packages.lock.json), started on a free loopback port with its storage in the
test's temp dir. The pull is plain HTTP (the registry API), not the pusher's library, so the two
check each other.

Inputs, from the BUILD file, in the environment: TOOL_FROM_TARS_SH, IMAGES
(NAME=PUSH_SCRIPT=DIGEST_FILE=IMAGE_DIR each) and REGISTRY_TARS, lists space-separated.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tools.testing.python.support import free_port, http_request, wait_until

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
START_TIMEOUT_S = 20


def get(url: str, accept: str = "*/*") -> bytes:
    """The body of a 200 answer to GET url."""
    response = http_request(url, headers={"Accept": accept}, timeout_s=30)
    assert response.status == 200, f"GET {url}: {response.status} {response.text[:300]}"
    return response.body


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Image:
    """One NAME=PUSH_SCRIPT=DIGEST_FILE=IMAGE_DIR argument."""

    def __init__(self, spec: str) -> None:
        self.name, push, digest, image = spec.split("=")
        self.push = Path(push)
        self.digest = Path(digest).read_text().strip()
        self.dir = Path(image)

    def blob(self, digest: str) -> bytes:
        algorithm, hex_digest = digest.split(":")
        return (self.dir / "blobs" / algorithm / hex_digest).read_bytes()


IMAGES = [Image(spec) for spec in os.environ["IMAGES"].split()]


@dataclass(frozen=True)
class Registry:
    """A running docker-registry at `host`, and a Docker config directory with no credentials
    (not the machine's)."""

    host: str
    docker_config: Path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    tmp = tmp_path_factory.mktemp("registry")
    binary = subprocess.run(
        [
            os.environ["TOOL_FROM_TARS_SH"],
            str(tmp / "registry"),
            "usr/bin/docker-registry",
            *os.environ["REGISTRY_TARS"].split(),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    host = f"127.0.0.1:{free_port()}"
    config = tmp / "config.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(tmp / "data")}},
                "http": {"addr": host},
            }
        )
    )
    log_path = tmp / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)

    def answers() -> bool:
        assert process.poll() is None, f"docker-registry exited: {log_path.read_text()}"
        return http_request(f"http://{host}/v2/").status == 200

    try:
        try:
            wait_until(answers, START_TIMEOUT_S, interval_s=0.1, what=f"docker-registry on {host}")
        except TimeoutError as error:
            raise RuntimeError(f"{error}: {log_path.read_text()}") from None
        yield Registry(host, tmp)
    finally:
        process.terminate()
        process.wait(timeout=10)


def push(
    registry: Registry, image: Image, *args: str, to: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs the image's push script; `to` is OCI_REGISTRY (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "OCI_REGISTRY"}
    env["DOCKER_CONFIG"] = str(registry.docker_config)  # no credentials of the machine's
    if to is not None:
        env["OCI_REGISTRY"] = to
    return subprocess.run(
        [str(image.push), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_every_image_the_manifests_run_is_pushed() -> None:
    assert {i.name for i in IMAGES} == {
        "alertmanager",
        "go-service",
        "nginx",
        "prometheus",
        "py-service",
        "redis",
    }


@pytest.mark.parametrize("image", IMAGES, ids=lambda image: image.name)
def test_every_image_pushes_and_pulls_back_by_its_built_digest(
    registry: Registry, image: Image
) -> None:
    proc = push(registry, image, to=registry.host + "/ci")
    assert proc.returncode == 0, proc.stderr
    repo = f"ci/cache-platform/{image.name}"
    assert proc.stdout.strip() == f"{registry.host}/{repo}@{image.digest}"

    manifest = get(f"http://{registry.host}/v2/{repo}/manifests/{image.digest}", MANIFEST_TYPES)
    assert sha256(manifest) == image.digest
    assert manifest == image.blob(image.digest)
    parsed: dict[str, Any] = json.loads(manifest)
    for desc in [parsed["config"], *parsed["layers"]]:
        blob = get(f"http://{registry.host}/v2/{repo}/blobs/{desc['digest']}")
        assert sha256(blob) == desc["digest"]
        assert len(blob) == desc["size"]


def test_tags_and_a_whole_repository_from_the_command_line(registry: Registry) -> None:
    image = IMAGES[0]
    repo = f"{registry.host}/elsewhere/{image.name}"
    proc = push(registry, image, "--repository", repo, "--tag", "ci-1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{repo}@{image.digest}"
    tagged = get(f"http://{registry.host}/v2/elsewhere/{image.name}/manifests/ci-1", MANIFEST_TYPES)
    assert sha256(tagged) == image.digest


def test_no_registry_is_an_error_that_says_which_variable(registry: Registry) -> None:
    proc = push(registry, IMAGES[0])
    assert proc.returncode == 2
    assert "OCI_REGISTRY" in proc.stderr
    assert proc.stdout == ""
