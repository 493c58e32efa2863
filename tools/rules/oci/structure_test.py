"""Structure test of one OCI image, from its config and layer listing (`ocitool inspect`).

Plays the part of container-structure-test, which no registry reachable here carries: checks that
the entrypoint's and the HEALTHCHECK's programs are in the image, that the user is $IMAGE_USER (the
nonroot user, tools/rules/oci/base/nonroot.bzl) and owns every file root does not, but no directory
that holds one of root's and nothing a lower layer gave root; that no file is setuid or setgid; and
which paths must or must not exist in the image's final filesystem.

Inputs, from image_structure_test (tools/rules/oci/image_tests.bzl), in the environment: OCITOOL and
IMAGE (paths), IMAGE_USER (UID:GID), EXPECT_FILES and FORBID_FILES (JSON arrays).
"""

import json
import os
import stat
import subprocess
from dataclasses import dataclass

import pytest


def entry_path(entry: dict) -> str:
    """The absolute path of a layer's entry: "./usr/bin/" -> "/usr/bin"."""
    return "/" + entry["path"].lstrip("./").rstrip("/")


def final_filesystem(layers: list[dict]) -> dict[str, dict]:
    """Path -> entry after applying the layers in order (whiteouts remove what lies below)."""
    files: dict[str, dict] = {}
    for layer in layers:
        for entry in layer["files"]:
            path = entry_path(entry)
            name = path.rsplit("/", 1)[-1]
            if name.startswith(".wh."):
                hidden = path.rsplit("/", 1)[0] + "/" + name[len(".wh.") :]
                files = {
                    p: e for p, e in files.items() if p != hidden and not p.startswith(hidden + "/")
                }
                continue
            files[path] = entry
    return files


CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def resolve(files: dict[str, dict], path: str, hops: int = 40) -> str | None:
    """path with every symlink in it followed, in the image's final filesystem; None if it is
    missing (or the links loop)."""
    parts = [p for p in path.split("/") if p]
    current = ""
    while parts and hops:
        current = f"{current}/{parts.pop(0)}"
        entry = files.get(current)
        if entry is None:
            if parts:  # a directory no tar entry names, only the paths beneath it
                continue
            return None
        if entry.get("type") == "symlink":
            hops -= 1
            target = entry["linkname"]
            base = "" if target.startswith("/") else current.rsplit("/", 1)[0]
            parts = [p for p in f"{base}/{target}".split("/") if p] + parts
            current = ""
            # ".." inside a target: normalised as the kernel would, against the link's directory
            normal: list[str] = []
            for part in parts:
                if part == "..":
                    if normal:
                        normal.pop()
                elif part != ".":
                    normal.append(part)
            parts = normal
    return current if not parts else None


@dataclass(frozen=True)
class Image:
    config: dict
    layers: list[dict]
    files: dict[str, dict]


@pytest.fixture(scope="module")
def image() -> Image:
    """The image's config and final filesystem, from `ocitool inspect`."""
    out = subprocess.run(
        [os.environ["OCITOOL"], "inspect", "--image", os.environ["IMAGE"]],
        check=True,
        capture_output=True,
    ).stdout
    inspected = json.loads(out)
    return Image(inspected["config"], inspected["layers"], final_filesystem(inspected["layers"]))


def assert_runs(image: Image, program: str, what: str) -> None:
    """program (an absolute path: exec form, no shell, no PATH lookup) resolves to an executable
    file of the image."""
    assert program.startswith("/"), f"{what} {program!r}: want an absolute path"
    found = resolve(image.files, program)
    assert found is not None, f"{program} (the {what}) is not in the image"
    entry = image.files[found]
    assert entry.get("type") == "file", f"{found} (the {what}) is not a file"
    assert int(entry["mode"]) & 0o111, f"{found} (the {what}) is not executable"


def test_entrypoint_runs_a_program_the_image_has(image: Image) -> None:
    entrypoint = image.config.get("Entrypoint") or []
    assert entrypoint, "no entrypoint"
    assert_runs(image, entrypoint[0], "entrypoint")


def test_healthcheck_runs_a_program_the_image_has(image: Image) -> None:
    # An exec-form HEALTHCHECK (no shell in these images) whose program is missing or not
    # executable leaves the container "unhealthy" for ever, and nothing else shows why.
    test = (image.config.get("Healthcheck") or {}).get("Test") or []
    if not test:
        pytest.skip("the image has no HEALTHCHECK")
    assert test[0] == "CMD", f"{test}: want the exec form, CMD and a program path"
    assert_runs(image, test[1], "HEALTHCHECK's program")


def test_user_is_not_root(image: Image) -> None:
    user = image.config.get("User", "")
    assert user, "no user set: the image would run as root"
    assert user.split(":")[0] not in ("0", "root")


def test_user_is_the_nonroot_user(image: Image) -> None:
    # Numeric, as Kubernetes' runAsNonRoot needs to check it without the image's passwd.
    assert image.config.get("User") == os.environ["IMAGE_USER"]


def test_files_are_owned_by_root_or_the_user(image: Image) -> None:
    uid, gid = (int(n) for n in os.environ["IMAGE_USER"].split(":"))
    others = {
        path: (entry["uid"], entry["gid"])
        for path, entry in image.files.items()
        if (entry["uid"], entry["gid"]) not in ((0, 0), (uid, gid))
    }
    assert others == {}


# The owner of a directory may rename or replace anything in it. pkg_tar gives the parent
# directories it adds the owner of the entry below them, so a layer with the user's
# /var/cache/nginx would also hand the user /var and /var/cache, and root's files under them.
def test_no_layer_hands_roots_paths_to_the_user(image: Image) -> None:
    uid = int(os.environ["IMAGE_USER"].split(":")[0])
    owner: dict[str, int] = {}
    handed = []
    for layer in image.layers:
        for entry in layer["files"]:
            path = entry_path(entry)
            if owner.get(path) == 0 and entry["uid"] == uid:
                handed.append(path)
            owner[path] = entry["uid"]
    assert handed == []


def test_user_owns_no_directory_above_roots_files(image: Image) -> None:
    uid = int(os.environ["IMAGE_USER"].split(":")[0])
    users_dirs = {
        path
        for path, entry in image.files.items()
        if entry.get("type") == "dir" and entry["uid"] == uid
    }
    exposed = sorted(
        path
        for path, entry in image.files.items()
        if entry["uid"] != uid and any(parent in users_dirs for parent in parents(path))
    )
    assert exposed == []


def parents(path: str) -> list[str]:
    """The directories above path, innermost first: /a/b/c -> /a/b, /a."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def test_no_setuid_or_setgid_files(image: Image) -> None:
    flagged = [
        path
        for path, entry in image.files.items()
        if int(entry["mode"]) & (stat.S_ISUID | stat.S_ISGID) and entry.get("type") != "dir"
    ]
    assert flagged == []


def test_expected_files_present(image: Image) -> None:
    missing = [p for p in json.loads(os.environ["EXPECT_FILES"]) if p not in image.files]
    assert missing == []


# OpenSSL (Python's ssl, curl) looks for CAs at its compiled-in defaults, /usr/lib/ssl's cert.pem
# and certs/; Go at /etc/ssl/certs/ca-certificates.crt. Every image carries the bundle (the base
# layer): each default must lead to it, or TLS verification fails.
@pytest.mark.parametrize(
    "path", ["/usr/lib/ssl/cert.pem", "/usr/lib/ssl/certs/ca-certificates.crt", CA_BUNDLE]
)
def test_tls_clients_trust_the_system_bundle(image: Image, path: str) -> None:
    resolved = resolve(image.files, path)
    assert resolved == CA_BUNDLE
    assert image.files[resolved].get("type") == "file"


def test_forbidden_files_absent(image: Image) -> None:
    present = [p for p in json.loads(os.environ["FORBID_FILES"]) if p in image.files]
    assert present == []
