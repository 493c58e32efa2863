"""`service_image`: one stack service's image, its loader and its structure test, declared once."""

load(":defs.bzl", "oci_image", "oci_load")
load(":image_tests.bzl", "image_structure_test")

def service_image(name, repo_tag, expect_files, forbid_files = [], visibility = None, **kwargs):
    """`oci_image` NAME, `oci_load` "load" (`bazel run //pkg:load` tags it REPO_TAG), NAME_structure_test.

    Args:
      name: the image target.
      repo_tag: the tag the loader gives it, like "cache-platform/nginx:dev".
      expect_files: paths the structure test requires in the image.
      forbid_files: paths the structure test forbids.
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
