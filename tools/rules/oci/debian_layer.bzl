"""`debian_layer` is hand-written: no reachable rule merges Debian package trees minus setuid bits.

One deterministic layer tarball from the filesystem tars of Debian packages (`dpkg-deb
--fsys-tarfile`), merged in order, without documentation and setuid/setgid bits, entries sorted and
dated the epoch (//tools/rules/oci/internal/layer). Every layer of files, binaries, symlinks and
directories is rules_pkg's `pkg_tar` instead (docs/images.md, "Layers").
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

def _debian_layer_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".tar")
    args = ctx.actions.args()
    args.add("layer")
    args.add("--out", out)
    args.add_all(ctx.files.tars, before_each = "--tar")
    args.add_all(DEFAULT_EXCLUDES + ctx.attr.excludes, before_each = "--exclude")
    ctx.actions.run(
        executable = ctx.executable._ocitool,
        arguments = [args],
        inputs = ctx.files.tars,
        outputs = [out],
        mnemonic = "DebianLayer",
        progress_message = "Writing layer %{label}",
    )
    return [DefaultInfo(files = depset([out]))]

debian_layer = rule(
    implementation = _debian_layer_impl,
    attrs = {
        "tars": attr.label_list(
            allow_files = [".tar"],
            mandatory = True,
            doc = "Filesystem tars merged in order (e.g. @debian_base//:tars).",
        ),
        "excludes": attr.string_list(doc = "Globs dropped besides DEFAULT_EXCLUDES."),
        "_ocitool": attr.label(default = _OCITOOL, executable = True, cfg = "exec"),
    },
)
