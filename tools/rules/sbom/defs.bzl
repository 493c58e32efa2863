"""`image_sbom`: the CycloneDX SBOM of an image, from what Bazel put into it (cmd/sbom)."""

load("//tools/rules/vuln:defs.bzl", "GoBinaryBlobInfo")

def _image_sbom_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".cdx.json")
    args = ctx.actions.args()
    args.add("-image", str(ctx.attr.image.label))
    args.add("-out", out)
    inputs = []
    if ctx.attr.debian_sets:
        args.add("-debian-lock", ctx.file._debian_lock)
        args.add_all(ctx.attr.debian_sets, before_each = "-debian-set")
        inputs.append(ctx.file._debian_lock)
    if ctx.file.python_wheels:
        args.add("-python-wheels", ctx.file.python_wheels)
        inputs.append(ctx.file.python_wheels)
    for target, path in sorted(ctx.attr.go_binaries.items(), key = lambda item: item[1]):
        info = target[GoBinaryBlobInfo]
        args.add("-go", "%s=%s=%s" % (path, info.binary.path, info.blob.path))
        inputs.extend([info.binary, info.blob])
    ctx.actions.run(
        executable = ctx.executable._sbom,
        arguments = [args],
        inputs = inputs,
        outputs = [out],
        mnemonic = "ImageSbom",
        progress_message = "Writing the SBOM of %{label}",
    )
    return [DefaultInfo(files = depset([out]))]

image_sbom = rule(
    implementation = _image_sbom_impl,
    doc = "CycloneDX JSON: the image's Debian packages, Python wheels and Go binaries with their modules.",
    attrs = {
        "image": attr.label(mandatory = True, doc = "The oci_image described (its name in the SBOM)."),
        "debian_sets": attr.string_list(doc = "Sets of tools/rules/debian/packages.lock.json the image stacks."),
        "python_wheels": attr.label(allow_single_file = True, doc = "name==version lines (py_image_files' wheels output group)."),
        "go_binaries": attr.label_keyed_string_dict(
            providers = [GoBinaryBlobInfo],
            doc = "go_binary_blob -> the binary's path in the image.",
        ),
        "_debian_lock": attr.label(default = "//tools/rules/debian:packages.lock.json", allow_single_file = True),
        "_sbom": attr.label(default = "//tools/rules/sbom/cmd/sbom", executable = True, cfg = "exec"),
    },
)
