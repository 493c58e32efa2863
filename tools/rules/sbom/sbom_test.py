"""Checks an image's SBOM against what the image really holds, read from its OCI layout.

Debian packages: the image's /var/lib/dpkg/status.d entries (written with each package's files);
Python wheels: its site-packages' *.dist-info directories; Go binaries: the programs outside
Debian's directories, and the SHA-256 of each. Each must be exactly what the SBOM lists.

Inputs, from image_sbom_test (tools/rules/oci/image_tests.bzl), in the environment: IMAGE (the OCI
layout directory) and SBOM (its CycloneDX JSON).
"""

import hashlib
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest


def final_filesystem(layout: Path) -> dict[str, bytes | None]:
    """Path -> contents (None for what is not a regular file) after applying every layer."""
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"

    def blob(digest: str) -> Path:
        return blobs / digest.removeprefix("sha256:")

    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    files: dict[str, bytes | None] = {}
    for layer in manifest["layers"]:
        with tarfile.open(blob(layer["digest"]), "r:*") as tar:
            for member in tar:
                path = "/" + member.name.lstrip("./")
                name = path.rsplit("/", 1)[-1]
                if name.startswith(".wh."):
                    hidden = path.rsplit("/", 1)[0] + "/" + name[len(".wh.") :]
                    files = {
                        p: c
                        for p, c in files.items()
                        if not (p == hidden or p.startswith(hidden + "/"))
                    }
                    continue
                extracted = tar.extractfile(member) if member.isfile() else None
                files[path] = extracted.read() if extracted else None
    return files


def normalise(name: str) -> str:
    """A Python distribution name as package URLs and the wheel file names agree on."""
    return re.sub(r"[-_.]+", "-", name).lower()


def debian_in_image(files: dict[str, bytes | None]) -> set[tuple[str, str]]:
    found = set()
    for path, content in files.items():
        if path.startswith("/var/lib/dpkg/status.d/") and content is not None:
            fields = dict(
                line.split(": ", 1)
                for line in content.decode().splitlines()
                if ": " in line and line[0] != " "
            )
            found.add((fields["Package"], fields["Version"]))
    return found


def python_in_image(files: dict[str, bytes | None]) -> set[tuple[str, str]]:
    found = set()
    for path in files:
        match = re.fullmatch(r"/app/site-packages/([^/]+)-([^-/]+)\.dist-info", path)
        if match:
            found.add((normalise(match[1]), match[2]))
    return found


# Every Go binary carries this in its build information (rules_go's too).
GO_BUILDINFO_MAGIC = b"\xff Go buildinf:"


def go_binaries_in_image(files: dict[str, bytes | None]) -> set[str]:
    """Go programs outside Debian's directories (a Debian package's, like prometheus, is listed
    as that package)."""
    return {
        path
        for path, content in files.items()
        if content
        and GO_BUILDINFO_MAGIC in content
        and (not path.startswith("/usr/") or path.startswith("/usr/local/"))
    }


@dataclass(frozen=True)
class Image:
    files: dict[str, bytes | None]
    components: list[dict]

    def listed(self, purl_type: str) -> set[tuple[str, str]]:
        """(name, version) of each component of that purl type in the SBOM."""
        return {
            (c["name"] if purl_type == "deb" else normalise(c["name"]), c["version"])
            for c in self.components
            if c.get("purl", "").startswith(f"pkg:{purl_type}/")
        }


@pytest.fixture(scope="module")
def image() -> Image:
    """The image's final filesystem and its SBOM's components."""
    return Image(
        final_filesystem(Path(os.environ["IMAGE"])),
        json.loads(Path(os.environ["SBOM"]).read_text()).get("components", []),
    )


def test_debian_packages(image: Image) -> None:
    assert image.listed("deb") == debian_in_image(image.files)
    assert image.listed("deb"), "every image holds Debian packages (base-files at least)"


def test_python_wheels(image: Image) -> None:
    assert image.listed("pypi") == python_in_image(image.files)


def test_go_binaries(image: Image) -> None:
    listed = {c["name"]: c for c in image.components if c["type"] == "application"}
    assert set(listed) == go_binaries_in_image(image.files)
    for path, component in listed.items():
        digest = hashlib.sha256(image.files[path] or b"").hexdigest()
        assert component["hashes"][0]["content"] == digest, path
