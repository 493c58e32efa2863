"""`service_image`: one stack service's image, its loader and its structure test, declared once."""

load("//tools/rules/sbom:defs.bzl", "image_sbom")
load(":defs.bzl", "oci_image", "oci_load")
load(":image_tests.bzl", "image_sbom_test", "image_structure_test")

def service_image(
        name,
        repo_tag,
        expect_files,
        debian_sets,
        forbid_files = [],
        go_binaries = {},
        python_wheels = None,
        visibility = None,
        **kwargs):
    """A stack service's image with its loader, structure test, SBOM and SBOM test.

    `oci_image` NAME, `oci_load` "load" (`bazel run //pkg:load` tags it REPO_TAG),
    NAME_structure_test, NAME_sbom (CycloneDX JSON) and NAME_sbom_test.

    Args:
      name: the image target.
      repo_tag: the tag the loader gives it, like "cache-platform/nginx:dev".
      expect_files: paths the structure test requires in the image.
      debian_sets: the sets of tools/rules/debian/packages.lock.json the image stacks (for the SBOM).
      forbid_files: paths the structure test forbids.
      go_binaries: go_binary_blob (//tools/rules/vuln) -> the binary's path in the image (for the SBOM).
      python_wheels: name==version lines of the image's wheels (py_image_layers, output group wheels).
      visibility: of the image and the loader.
      **kwargs: oci_image attributes (entrypoint is also what the structure test expects).
    """
    oci_image(name = name, visibility = visibility, **kwargs)
    oci_load(
        name = "load",
        image = ":" + name,
        repo_tags = [repo_tag],
        visibility = visibility,
    )
    image_structure_test(
        name = name + "_structure_test",
        entrypoint = kwargs["entrypoint"],
        expect_files = expect_files,
        forbid_files = forbid_files,
        image = ":" + name,
    )
    image_sbom(
        name = name + "_sbom",
        debian_sets = debian_sets,
        go_binaries = go_binaries,
        image = ":" + name,
        python_wheels = python_wheels,
        visibility = visibility,
    )
    image_sbom_test(
        name = name + "_sbom_test",
        image = ":" + name,
        sbom = ":" + name + "_sbom",
    )
