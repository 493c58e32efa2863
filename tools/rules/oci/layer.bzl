"""`layer_tar`: one deterministic layer tarball from Debian package trees, files and symlinks.

Plays the role pkg_tar plays for rules_oci users, and also merges the filesystem tars of Debian
packages (dropping setuid bits and documentation), which pkg_tar cannot.
"""

_OCITOOL = Label("//tools/rules/oci/cmd/ocitool")

# Never needed in a container image; they make up most of a Debian package's size.
DEFAULT_EXCLUDES = [
    "usr/share/doc/**",
    "usr/share/man/**",
    "usr/share/info/**",
    "usr/share/locale/**",
    "usr/share/lintian/**",
    "usr/share/bug/**",
]

def _layer_tar_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".tar")
    args = ctx.actions.args()
    args.add("layer")
    args.add("--out", out)
    args.add_all(ctx.files.tars, before_each = "--tar")
    inputs = list(ctx.files.tars)
    for target, dst in sorted(ctx.attr.files.items(), key = lambda item: item[1]):
        src = target.files.to_list()
        if len(src) != 1:
            fail("%s: files: %s must be exactly one file" % (ctx.label, target.label))
        inputs.append(src[0])
        mode = ctx.attr.modes.get(dst, "")
        args.add("--file", "%s=%s%s" % (dst, src[0].path, ":" + mode if mode else ""))
    args.add_all(["%s=%s" % (k, v) for k, v in sorted(ctx.attr.symlinks.items())], before_each = "--symlink")
    args.add_all(ctx.attr.dirs, before_each = "--dir")
    args.add_all(DEFAULT_EXCLUDES + ctx.attr.excludes, before_each = "--exclude")
    ctx.actions.run(
        executable = ctx.executable._ocitool,
        arguments = [args],
        inputs = inputs,
        outputs = [out],
        mnemonic = "LayerTar",
        progress_message = "Writing layer %{label}",
    )
    return [DefaultInfo(files = depset([out]))]

layer_tar = rule(
    implementation = _layer_tar_impl,
    attrs = {
        "tars": attr.label_list(allow_files = [".tar"], doc = "Filesystem tars merged in order (e.g. @debian_base//:tars)."),
        "files": attr.label_keyed_string_dict(allow_files = True, doc = "File -> absolute path in the layer."),
        "modes": attr.string_dict(doc = "Path in the layer -> octal mode, for entries of `files`."),
        "symlinks": attr.string_dict(doc = "Path in the layer -> symlink target."),
        "dirs": attr.string_list(doc = "Empty directories to create, as PATH or PATH:MODE."),
        "excludes": attr.string_list(doc = "Globs dropped besides DEFAULT_EXCLUDES."),
        "_ocitool": attr.label(default = _OCITOOL, executable = True, cfg = "exec"),
    },
)
