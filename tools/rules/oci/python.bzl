"""`py_image_files`: a py_binary's runfiles as rules_pkg files, third-party wheels apart from our code.

`part = "site_packages"`: the wheels, under /app/site-packages; `part = "app"`: our code under /app
(set PYTHONPATH to both). Each goes into a pkg_tar layer of its own: the wheels change only with the
lock file, so a change to the app rebuilds and ships only the small app layer. Every file is 0644:
Python reads them all, and an extension module is mapped, not executed.
"""

load("@rules_pkg//pkg:providers.bzl", "PackageFilesInfo")

_SITE_PACKAGES = "/site-packages/"

def _py_image_files_impl(ctx):
    runfiles = ctx.attr.binary[DefaultInfo].default_runfiles.files.to_list()
    dest_src_map = {}
    for f in runfiles:
        dest = None
        if f.short_path.startswith("../"):
            # ../<pip repo>/site-packages/<path>: keep only what is inside site-packages.
            at = f.short_path.find(_SITE_PACKAGES)
            rel = f.short_path[at + len(_SITE_PACKAGES):] if at >= 0 else ""
            if ctx.attr.part == "site_packages" and rel and rel != "__init__.py":
                dest = "app/site-packages/" + rel
        elif ctx.attr.part == "app" and (f.extension == "py" or f.basename.endswith(".json")):
            dest = "app/" + f.short_path
        if dest == None:
            continue
        if dest in dest_src_map:
            fail("%s: %s and %s both land at /%s" % (ctx.label, dest_src_map[dest].short_path, f.short_path, dest))
        dest_src_map[dest] = f

    # name==version of every wheel, from its .dist-info directory name (<name>-<version>.dist-info):
    # what the image's SBOM lists (//tools/rules/sbom).
    dist_infos = {}
    for f in runfiles:
        at = f.short_path.find(".dist-info/")
        if f.short_path.startswith("../") and at >= 0:
            name, _, version = f.short_path[:at].rpartition("/")[2].rpartition("-")
            dist_infos["%s==%s" % (name, version)] = True
    wheel_list = ctx.actions.declare_file(ctx.label.name + "_wheels.txt")
    ctx.actions.write(wheel_list, "".join(["%s\n" % w for w in sorted(dist_infos)]))

    return [
        PackageFilesInfo(dest_src_map = dest_src_map, attributes = {"mode": "0644"}),
        DefaultInfo(files = depset(dest_src_map.values())),
        OutputGroupInfo(wheels = depset([wheel_list])),
    ]

py_image_files = rule(
    implementation = _py_image_files_impl,
    doc = "Files of a py_binary for a pkg_tar layer; output group `wheels`: the name==version list.",
    attrs = {
        "binary": attr.label(mandatory = True, doc = "A py_binary whose runfiles the image runs."),
        "part": attr.string(mandatory = True, values = ["site_packages", "app"]),
    },
)
