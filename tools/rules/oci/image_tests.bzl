"""Tests of one oci_image with no engine: its structure and its SBOM (the smoke run in Docker is
//tools/testing/image:smoke_test.bzl)."""

load("//tools/rules/oci/base:nonroot.bzl", "NONROOT_USER")
load("//tools/rules/python:pytest.bzl", "pytest_test")

def image_structure_test(name, image, expect_files = [], forbid_files = [], **kwargs):
    """Checks `image` from its config and layer listing, with no engine (structure_test.py).

    Every image: the user NONROOT_USER, which owns every file root does not, but no directory that
    holds one of root's and nothing a lower layer gave root; no setuid or setgid file; the entrypoint's and the HEALTHCHECK's programs
    present and executable; the CA bundle where TLS clients look; and `expect_files` present,
    `forbid_files` absent (absolute paths in the image's final filesystem).
    """
    pytest_test(
        name = name,
        size = "small",
        # Its timeout bounds a hang, not the machine: 3 times its longest run beside three CPU
        # hogs (29 s).
        timeout = "moderate",
        srcs = [Label("//tools/rules/oci:structure_test.py")],
        env = {
            "EXPECT_FILES": json.encode(expect_files),
            "FORBID_FILES": json.encode(forbid_files),
            "IMAGE": "$(rootpath %s)" % image,
            "OCITOOL": "$(rootpath %s)" % Label("//tools/rules/oci/cmd/ocitool"),
            "IMAGE_USER": NONROOT_USER,
        },
        data = [
            image,
            Label("//tools/rules/oci/cmd/ocitool"),
        ],
        **kwargs
    )

def image_sbom_test(name, image, sbom, **kwargs):
    """Checks that `sbom` lists exactly the Debian packages, wheels and Go binaries `image` holds."""
    pytest_test(
        name = name,
        size = "small",
        timeout = "moderate",  # 23 s at most beside three CPU hogs
        srcs = [Label("//tools/rules/sbom:sbom_test.py")],
        env = {
            "IMAGE": "$(rootpath %s)" % image,
            "SBOM": "$(rootpath %s)" % sbom,
        },
        data = [
            image,
            sbom,
        ],
        **kwargs
    )
