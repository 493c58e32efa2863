"""`image_structure_test`: the structure test (tools/oci/structure_test.py) of one oci_image."""

load("@rules_python//python:defs.bzl", "py_test")

def image_structure_test(name, image, entrypoint, expect_files = [], forbid_files = [], **kwargs):
    py_test(
        name = name,
        size = "small",
        srcs = [Label("//tools/oci:structure_test.py")],
        main = Label("//tools/oci:structure_test.py"),
        args = [
            "--ocitool=$(rootpath %s)" % Label("//tools/oci/cmd/ocitool"),
            "--image=$(rootpath %s)" % image,
            "--entrypoint='%s'" % json.encode(entrypoint),
        ] + ["--expect-file=" + f for f in expect_files] + ["--forbid-file=" + f for f in forbid_files],
        data = [
            image,
            Label("//tools/oci/cmd/ocitool"),
        ],
        **kwargs
    )
