"""build_info: a JSON file {"version": ..., "revision": ...} naming what was built.

version comes from //:version.bzl; revision is the git commit from Bazel's stable status
(tools/rules/buildinfo/workspace_status.sh) in a stamped build (--stamp), "unknown" otherwise, so
unstamped builds stay reproducible and cacheable (Bazel's stamping:
https://bazel.build/docs/user-manual#workspace-status).
"""

load("//:version.bzl", "VERSION")

def _build_info_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".json")
    if not ctx.attr.stamped:
        ctx.actions.write(out, json.encode({"revision": "unknown", "version": VERSION}) + "\n")
        return [DefaultInfo(files = depset([out]))]
    ctx.actions.run_shell(
        inputs = [ctx.info_file],
        outputs = [out],
        command = """
revision="$(awk '$1 == "STABLE_GIT_COMMIT" {print $2}' "$1")"
printf '{"revision": "%s", "version": "%s"}\\n' "${revision:-unknown}" "$2" >"$3"
""",
        arguments = [ctx.info_file.path, VERSION, out.path],
        mnemonic = "BuildInfo",
    )
    return [DefaultInfo(files = depset([out]))]

_build_info = rule(
    implementation = _build_info_impl,
    attrs = {"stamped": attr.bool()},
)

def build_info(name, **kwargs):
    """NAME.json with the product's version and, in a stamped build, its revision."""
    _build_info(
        name = name,
        stamped = select({
            "//tools/rules/buildinfo:stamped": True,
            "//conditions:default": False,
        }),
        **kwargs
    )
