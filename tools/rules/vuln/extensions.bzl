"""Go supply-chain inputs as repositories, fetched with the go command through the Go module proxy.

@go_vulndb: the OSV entries of the golang.org/x/vulndb snapshot that vulndb.lock.json pins
(module version and go.sum hash; refresh: `tools/bazel run //tools/rules/vuln:update`).
@go_build_list: `go list -m -json all` of the workspace: the module versions our Go binaries are
built from (rules_go writes no module list into binaries; see cmd/vulnblob).
"""

def _go(rctx, args, working_directory, environment = {}):
    go = rctx.which("go")
    if not go:
        fail("no go command on PATH: the build uses the machine's Go (MODULE.bazel, go_sdk.host)")
    result = rctx.execute([go] + args, working_directory = working_directory, environment = environment)
    if result.return_code:
        fail("go %s failed:\n%s" % (" ".join(args), result.stderr))
    return result.stdout

def _go_vulndb_impl(rctx):
    lock = json.decode(rctx.read(rctx.attr.lock))
    rctx.file("scratch/go.mod", "module scratch\n")
    info = json.decode(_go(
        rctx,
        ["mod", "download", "-json", "%s@%s" % (lock["module"], lock["version"])],
        "scratch",
        {"GOFLAGS": "-mod=mod"},
    ))
    if info.get("Sum") != lock["sum"]:
        fail("%s@%s has hash %s, but %s pins %s" % (lock["module"], lock["version"], info.get("Sum"), rctx.attr.lock, lock["sum"]))
    rctx.delete("scratch")

    # The module cache's files are read-only: copy, then make the copies writable for Bazel.
    result = rctx.execute(["cp", "-r", info["Dir"] + "/data/osv", "osv"])
    if result.return_code:
        fail("copying the OSV entries: " + result.stderr)
    rctx.execute(["chmod", "-R", "u+w", "osv"])
    rctx.file("BUILD.bazel", """\
filegroup(
    name = "osv",
    srcs = glob(["osv/*.json"]),
    visibility = ["//visibility:public"],
)
""")

_go_vulndb = repository_rule(
    implementation = _go_vulndb_impl,
    attrs = {"lock": attr.label(mandatory = True, allow_single_file = True)},
)

def _go_build_list_impl(rctx):
    for src in rctx.attr.srcs:
        rctx.watch(src)
    go_work = rctx.path(rctx.attr.go_work)

    # Workspace mode is read-only (it never edits go.work.sum); GOFLAGS from the machine is not ours.
    rctx.file("modules.json", _go(
        rctx,
        ["list", "-m", "-json", "all"],
        str(go_work.dirname),
        {"GOWORK": str(go_work), "GOFLAGS": ""},
    ))
    rctx.file("BUILD.bazel", 'exports_files(["modules.json"])\n')

_go_build_list = repository_rule(
    implementation = _go_build_list_impl,
    attrs = {
        "go_work": attr.label(mandatory = True, allow_single_file = True),
        "srcs": attr.label_list(allow_files = True, doc = "go.mod and go.sum files: refetch when one changes."),
    },
)

def _go_supply_chain_impl(mctx):
    for mod in mctx.modules:
        for tag in mod.tags.vulndb:
            _go_vulndb(name = "go_vulndb", lock = tag.lock)
        for tag in mod.tags.build_list:
            _go_build_list(name = "go_build_list", go_work = tag.go_work, srcs = tag.srcs)

go_supply_chain = module_extension(
    implementation = _go_supply_chain_impl,
    tag_classes = {
        "vulndb": tag_class(attrs = {"lock": attr.label(mandatory = True)}),
        "build_list": tag_class(attrs = {
            "go_work": attr.label(mandatory = True),
            "srcs": attr.label_list(),
        }),
    },
)
