"""`py_image_layers`: a py_binary's runfiles as two layers, third-party wheels apart from our code.

The wheels change only with the lock file, so a change to the app rebuilds and ships only the small
app layer. Wheels land in /app/site-packages, our code under /app (set PYTHONPATH to both).
"""

_OCITOOL = Label("//tools/rules/oci/cmd/ocitool")
_SITE_PACKAGES = "/site-packages/"

def _manifest_line(dst, file):
    return "%s\t%s" % (dst, file.path)

def _py_image_layers_impl(ctx):
    runfiles = ctx.attr.binary[DefaultInfo].default_runfiles.files.to_list()
    wheels, app = [], []
    for f in runfiles:
        if f.short_path.startswith("../"):
            # ../<pip repo>/site-packages/<path>: keep only what is inside site-packages.
            at = f.short_path.find(_SITE_PACKAGES)
            rel = f.short_path[at + len(_SITE_PACKAGES):] if at >= 0 else ""
            if rel and rel != "__init__.py":
                wheels.append(_manifest_line("app/site-packages/" + rel, f))
        elif f.extension == "py" or f.basename.endswith(".json"):
            app.append(_manifest_line("app/" + f.short_path, f))

    # name==version of every wheel in the wheels layer, from its .dist-info directory name
    # (<name>-<version>.dist-info): what the image's SBOM lists (//tools/rules/sbom).
    dist_infos = {}
    for f in runfiles:
        at = f.short_path.find(".dist-info/")
        if f.short_path.startswith("../") and at >= 0:
            name, _, version = f.short_path[:at].rpartition("/")[2].rpartition("-")
            dist_infos["%s==%s" % (name, version)] = True
    wheel_list = ctx.actions.declare_file(ctx.label.name + "_wheels.txt")
    ctx.actions.write(wheel_list, "".join(["%s\n" % w for w in sorted(dist_infos)]))
    outputs = []
    for name, lines in (("site_packages", wheels), ("app", app)):
        manifest = ctx.actions.declare_file("%s_%s.manifest" % (ctx.label.name, name))
        ctx.actions.write(manifest, "\n".join(sorted(lines)) + "\n")
        layer = ctx.actions.declare_file("%s_%s.tar" % (ctx.label.name, name))
        ctx.actions.run(
            executable = ctx.executable._ocitool,
            arguments = ["layer", "--out", layer.path, "--manifest", manifest.path],
            inputs = depset([manifest], transitive = [ctx.attr.binary[DefaultInfo].default_runfiles.files]),
            outputs = [layer],
            mnemonic = "PyLayerTar",
            progress_message = "Writing %s layer of %%{label}" % name,
        )
        outputs.append(layer)
    return [
        DefaultInfo(files = depset(outputs)),
        OutputGroupInfo(
            site_packages = depset([outputs[0]]),
            app = depset([outputs[1]]),
            wheels = depset([wheel_list]),
        ),
    ]

py_image_layers = rule(
    implementation = _py_image_layers_impl,
    attrs = {
        "binary": attr.label(mandatory = True, doc = "A py_binary whose runfiles the image runs."),
        "_ocitool": attr.label(default = _OCITOOL, executable = True, cfg = "exec"),
    },
)
