"""Tests of one oci_image: its structure (no engine needed) and a smoke run in Docker."""

load("@rules_python//python:defs.bzl", "py_test")

def image_structure_test(name, image, expect_files = [], forbid_files = [], **kwargs):
    """Checks `image` from its config and layer listing, with no engine (structure_test.py).

    Every image: a non-root user, no setuid or setgid file, the entrypoint's and the HEALTHCHECK's
    programs present and executable, the CA bundle where TLS clients look; and `expect_files`
    present, `forbid_files` absent (absolute paths in the image's final filesystem).
    """
    py_test(
        name = name,
        size = "small",
        srcs = [Label("//tools/rules/oci:structure_test.py")],
        main = Label("//tools/rules/oci:structure_test.py"),
        args = [
            "--ocitool=$(rootpath %s)" % Label("//tools/rules/oci/cmd/ocitool"),
            "--image=$(rootpath %s)" % image,
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
