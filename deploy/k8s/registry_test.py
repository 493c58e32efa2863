"""Every image the Kubernetes manifests run, pushed by its oci_push target to a real registry and
pulled back by digest: the digest each push prints is the one Bazel built (NAME.digest, what the
pinned render names), and the manifest and every blob pulled by digest are the built bytes.

The registry is Debian's docker-registry (the CNCF distribution registry, pinned in
tools/rules/debian/packages.lock.json), started on a free loopback port with its storage in the
test's
temp dir. The pull is plain HTTP (the registry API), not the pusher's library, so the two check
each other.

Arguments: TOOL_FROM_TARS_SH NAME=PUSH_SCRIPT=DIGEST_FILE=IMAGE_DIR... -- REGISTRY_TAR...
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path
from typing import Any

ARGS: list[str] = []
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
START_TIMEOUT_S = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, accept: str = "*/*") -> bytes:
    req = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


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


class RegistryTest(unittest.TestCase):
    tmp: tempfile.TemporaryDirectory[str]
    registry: subprocess.Popen[bytes]
    host: str
    images: list[Image]

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        tmp = Path(cls.tmp.name)
        sep = ARGS.index("--")
        tool_from_tars, specs, tars = ARGS[0], ARGS[1:sep], ARGS[sep + 1 :]
        cls.images = [Image(s) for s in specs]
        binary = subprocess.run(
            [tool_from_tars, str(tmp / "registry"), "usr/bin/docker-registry", *tars],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        cls.host = f"127.0.0.1:{free_port()}"
        config = tmp / "config.yml"
        config.write_text(
            json.dumps(
                {
                    "version": 0.1,
                    "log": {"level": "warn"},
                    "storage": {"filesystem": {"rootdirectory": str(tmp / "data")}},
                    "http": {"addr": cls.host},
                }
            )
        )
        cls.log = (tmp / "registry.log").open("wb")
        cls.registry = subprocess.Popen(
            [binary, "serve", str(config)], stdout=cls.log, stderr=cls.log
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                get(f"http://{cls.host}/v2/")
                break
            except OSError:
                if cls.registry.poll() is not None or time.monotonic() > deadline:
                    log = (tmp / "registry.log").read_text()
                    cls.tearDownClass()
                    raise RuntimeError(
                        f"docker-registry did not answer on {cls.host}: {log}"
                    ) from None
                time.sleep(0.1)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.registry.terminate()
        cls.registry.wait(timeout=10)
        cls.log.close()
        cls.tmp.cleanup()

    def push(
        self, image: Image, *args: str, registry: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "OCI_REGISTRY"}
        env["DOCKER_CONFIG"] = self.tmp.name  # no credentials of the machine's
        if registry is not None:
            env["OCI_REGISTRY"] = registry
        return subprocess.run(
            [str(image.push), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )

    def test_every_image_pushes_and_pulls_back_by_its_built_digest(self) -> None:
        self.assertEqual(
            {i.name for i in self.images},
            {"go-service", "nginx", "prometheus", "py-service", "redis"},
        )
        for image in self.images:
            with self.subTest(image=image.name):
                proc = self.push(image, registry=self.host + "/ci")
                self.assertEqual(proc.returncode, 0, proc.stderr)
                repo = f"ci/cache-platform/{image.name}"
                self.assertEqual(proc.stdout.strip(), f"{self.host}/{repo}@{image.digest}")

                manifest = get(
                    f"http://{self.host}/v2/{repo}/manifests/{image.digest}", MANIFEST_TYPES
                )
                self.assertEqual(sha256(manifest), image.digest)
                self.assertEqual(manifest, image.blob(image.digest))
                parsed: dict[str, Any] = json.loads(manifest)
                for desc in [parsed["config"], *parsed["layers"]]:
                    blob = get(f"http://{self.host}/v2/{repo}/blobs/{desc['digest']}")
                    self.assertEqual(sha256(blob), desc["digest"])
                    self.assertEqual(len(blob), desc["size"])

    def test_tags_and_a_whole_repository_from_the_command_line(self) -> None:
        image = self.images[0]
        repo = f"{self.host}/elsewhere/{image.name}"
        proc = self.push(image, "--repository", repo, "--tag", "ci-1")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.strip(), f"{repo}@{image.digest}")
        tagged = get(f"http://{self.host}/v2/elsewhere/{image.name}/manifests/ci-1", MANIFEST_TYPES)
        self.assertEqual(sha256(tagged), image.digest)

    def test_no_registry_is_an_error_that_says_which_variable(self) -> None:
        proc = self.push(self.images[0])
        self.assertEqual(proc.returncode, 2)
        self.assertIn("OCI_REGISTRY", proc.stderr)
        self.assertEqual(proc.stdout, "")


if __name__ == "__main__":
    ARGS = sys.argv[1:]
    if "--" not in ARGS:
        sys.exit(
            "usage: registry_test.py TOOL_FROM_TARS_SH NAME=PUSH=DIGEST=IMAGE... -- REGISTRY_TAR..."
        )
    unittest.main(argv=sys.argv[:1])
