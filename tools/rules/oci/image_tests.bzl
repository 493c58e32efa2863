"""Tests of one oci_image: its structure (no engine needed) and a smoke run in Docker."""

load("@rules_python//python:defs.bzl", "py_test")
load("//tools/rules/oci/base:nonroot.bzl", "NONROOT_USER")

def image_structure_test(name, image, entrypoint, expect_files = [], forbid_files = [], **kwargs):
    """Checks `image`'s entrypoint, user (NONROOT_USER), file owners, setuid bits, CAs and paths."""
    py_test(
        name = name,
        size = "small",
        srcs = [Label("//tools/rules/oci:structure_test.py")],
        main = Label("//tools/rules/oci:structure_test.py"),
        args = [
            "--ocitool=$(rootpath %s)" % Label("//tools/rules/oci/cmd/ocitool"),
            "--image=$(rootpath %s)" % image,
            "--entrypoint='%s'" % json.encode(entrypoint),
            "--user=" + NONROOT_USER,
        ] + ["--expect-file=" + f for f in expect_files] + ["--forbid-file=" + f for f in forbid_files],
        data = [
            image,
            Label("//tools/rules/oci/cmd/ocitool"),
        ],
        **kwargs
    )

def image_sbom_test(name, image, sbom, **kwargs):
    """Checks that `sbom` lists exactly the Debian packages, wheels and Go binaries `image` holds."""
    py_test(
        name = name,
        size = "small",
        srcs = [Label("//tools/rules/sbom:sbom_test.py")],
        main = Label("//tools/rules/sbom:sbom_test.py"),
        args = [
            "--image=$(rootpath %s)" % image,
            "--sbom=$(rootpath %s)" % sbom,
        ],
        data = [
            image,
            sbom,
        ],
        **kwargs
    )

def image_smoke_test(name, loader, repo_tag, port, **kwargs):
    """Loads the image with `loader` (an oci_load), runs it, and checks /healthz and /time on `port`."""
    py_test(
        name = name,
        size = "medium",
        srcs = [Label("//tools/rules/oci:smoke_test.py")],
        main = Label("//tools/rules/oci:smoke_test.py"),
        args = ["$(rootpath %s)" % loader, repo_tag, str(port)],
        data = [loader, Label("//tools/rules/docker:engine.sh")],
        # Unsandboxed: an engine this test may start must outlive it, outside the sandbox.
        tags = [
            "no-sandbox",
            "requires-docker",
        ],
        **kwargs
    )
