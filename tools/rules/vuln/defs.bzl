"""Rules for the offline Go vulnerability scan (docs/images.md, "Supply chain")."""

load("@rules_shell//shell:sh_test.bzl", "sh_test")

def _go_vulndb_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    ctx.actions.run(
        executable = ctx.executable._vulndb,
        arguments = ["-out", out.path, ctx.files.osv[0].dirname],
        inputs = ctx.files.osv,
        outputs = [out],
        mnemonic = "GoVulnDB",
        progress_message = "Indexing the Go vulnerability database %{label}",
    )
    return [DefaultInfo(files = depset([out]))]

go_vulndb = rule(
    implementation = _go_vulndb_impl,
    doc = "A Go vulnerability database (v1 layout, for `govulncheck -db file://DIR`) from OSV entries.",
    attrs = {
        "osv": attr.label(mandatory = True, allow_files = [".json"], doc = "OSV entries, all in one directory."),
        "_vulndb": attr.label(default = Label("//tools/rules/vuln/cmd/vulndb"), executable = True, cfg = "exec"),
    },
)

GoBinaryBlobInfo = provider(
    doc = "A Go binary and its govulncheck blob (cmd/vulnblob).",
    fields = {"binary": "File: the Go binary", "blob": "File: its blob"},
)

def _go_binary_blob_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".json")
    ctx.actions.run(
        executable = ctx.executable._vulnblob,
        arguments = [
            "-govulncheck",
            ctx.executable._govulncheck.path,
            "-build-list",
            ctx.file._build_list.path,
            "-out",
            out.path,
            ctx.executable.binary.path,
        ],
        inputs = [ctx.executable.binary, ctx.file._build_list],
        tools = [ctx.executable._govulncheck],
        outputs = [out],
        mnemonic = "GoBinaryBlob",
        progress_message = "Describing Go binary %{label}",
    )
    return [
        DefaultInfo(files = depset([out])),
        GoBinaryBlobInfo(binary = ctx.executable.binary, blob = out),
    ]

go_binary_blob = rule(
    implementation = _go_binary_blob_impl,
    doc = """What govulncheck knows of a Go binary, with its modules (cmd/vulnblob): a blob that
`govulncheck -mode=binary` scans in place of the binary, and the SBOMs read.""",
    attrs = {
        "binary": attr.label(mandatory = True, executable = True, cfg = "target"),
        "_build_list": attr.label(default = "@go_build_list//:modules.json", allow_single_file = True),
        "_govulncheck": attr.label(default = "@org_golang_x_vuln//cmd/govulncheck", executable = True, cfg = "exec"),
        "_vulnblob": attr.label(default = Label("//tools/rules/vuln/cmd/vulnblob"), executable = True, cfg = "exec"),
    },
)

def _exec_tool_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.symlink(output = out, target_file = ctx.executable.tool, is_executable = True)
    return [DefaultInfo(
        executable = out,
        runfiles = ctx.runfiles(files = [out]).merge(ctx.attr.tool[DefaultInfo].default_runfiles),
    )]

exec_tool = rule(
    implementation = _exec_tool_impl,
    doc = """A tool built for the exec configuration, for tests and `bazel run` to call: the same
binary the build's actions use, so its packages are not compiled a second time for the target.""",
    executable = True,
    attrs = {"tool": attr.label(mandatory = True, executable = True, cfg = "exec")},
)

def govulncheck_test(name, blobs, **kwargs):
    """A test that fails on any known vulnerability whose code one of `blobs` holds.

    Declared next to the binary it scans, so that the area owning a binary owns its scan.

    Args:
      name: the sh_test.
      blobs: go_binary_blob labels.
      **kwargs: passed to sh_test (size, tags, ...).
    """
    tool = Label("//tools/rules/vuln:govulncheck")
    db = Label("//tools/rules/vuln:db")
    sh_test(
        name = name,
        srcs = [Label("//tools/rules/vuln:scan.sh")],
        args = ["$(rootpath %s)" % tool, "$(rootpath %s)" % db] + ["$(rootpath %s)" % b for b in blobs],
        data = [tool, db] + blobs,
        **kwargs
    )
