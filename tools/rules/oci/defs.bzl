"""The smallest OCI rules this repo needs, with rules_oci's names and attributes.

rules_oci is in no registry reachable here. These rules keep its interface
(`oci_image(base, tars, entrypoint, cmd, env, user, workdir, exposed_ports, labels)`,
`oci_load(image, repo_tags)`, `oci_push(image, repository, remote_tags)`), so moving to rules_oci
is a change of `load()` lines. The extensions: `oci_image(healthcheck)`, which rules_oci lacks
(Docker reads it from the image config; drop it when switching and keep the compose healthcheck),
and `oci_push`'s registry, taken from $OCI_REGISTRY at run time (with rules_oci, pass
`--repository` instead). The OCI work itself (layers, digests, config, manifest, layout,
docker-archive, push) is done by //tools/rules/oci/cmd/ocitool with go-containerregistry.
"""

_OCITOOL = Label("//tools/rules/oci/cmd/ocitool")

# The OCI architecture of each CPU an image can be built for: the Debian lock's arch (amd64).
# Another needs packages of its own arch in tools/rules/debian (docs/bazel.md, "Platforms").
_OCI_ARCH = {"x86_64": "amd64"}

def _image_platform(ctx):
    """The image config's (os, architecture): the target platform's, as OCI names them."""
    if not ctx.target_platform_has_constraint(ctx.attr._linux[platform_common.ConstraintValueInfo]):
        fail("%s: images are Linux images: build them with --platforms=//platforms:linux_amd64" % ctx.label)
    for cpu, arch in _OCI_ARCH.items():
        if ctx.target_platform_has_constraint(getattr(ctx.attr, "_" + cpu)[platform_common.ConstraintValueInfo]):
            return "linux", arch
    fail("%s: no image for this target platform's CPU: the Debian packages are locked for %s only (docs/bazel.md, \"Platforms\")" % (
        ctx.label,
        ", ".join(["linux/" + a for a in _OCI_ARCH.values()]),
    ))

def _oci_image_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    os, arch = _image_platform(ctx)
    args = ctx.actions.args()
    args.add("image")
    args.add("--out", out.path)
    args.add("--os", os)
    args.add("--arch", arch)
    inputs = list(ctx.files.tars)
    if ctx.attr.base:
        base = ctx.files.base[0]
        inputs.append(base)
        args.add("--base", base.path)
    args.add_all(ctx.files.tars, before_each = "--layer")
    if ctx.attr.entrypoint:
        args.add("--entrypoint", json.encode(ctx.attr.entrypoint))
    if ctx.attr.cmd:
        args.add("--cmd", json.encode(ctx.attr.cmd))
    if ctx.attr.healthcheck:
        args.add("--healthcheck", json.encode(ctx.attr.healthcheck))
    args.add_all(["%s=%s" % (k, v) for k, v in sorted(ctx.attr.env.items())], before_each = "--env")
    args.add_all(["%s=%s" % (k, v) for k, v in sorted(ctx.attr.labels.items())], before_each = "--label")
    args.add_all(ctx.attr.exposed_ports, before_each = "--exposed-port")
    if ctx.attr.user:
        args.add("--user", ctx.attr.user)
    if ctx.attr.workdir:
        args.add("--workdir", ctx.attr.workdir)
    if ctx.attr.stop_signal:
        args.add("--stop-signal", ctx.attr.stop_signal)
    ctx.actions.run(
        executable = ctx.executable._ocitool,
        arguments = [args],
        inputs = inputs,
        outputs = [out],
        mnemonic = "OciImage",
        progress_message = "Assembling OCI image %{label}",
    )
    return [DefaultInfo(files = depset([out]))]

oci_image = rule(
    implementation = _oci_image_impl,
    doc = "An OCI image layout directory: the base's layers and config, then one layer per tar; " +
          "its config's os and architecture are the target platform's (--platforms).",
    attrs = {
        "base": attr.label(allow_single_file = True, doc = "An oci_image to build on; none: empty."),
        "tars": attr.label_list(allow_files = [".tar"], doc = "Layer tarballs, in order."),
        "entrypoint": attr.string_list(),
        "cmd": attr.string_list(),
        "env": attr.string_dict(),
        "user": attr.string(),
        "workdir": attr.string(),
        "exposed_ports": attr.string_list(doc = "Like \"8080/tcp\"."),
        "labels": attr.string_dict(),
        "healthcheck": attr.string_list(doc = "Docker HEALTHCHECK test, e.g. [\"CMD\", \"/usr/local/bin/probe\", \"http://127.0.0.1:8080/healthz\"]."),
        "stop_signal": attr.string(doc = "The signal that stops the container (Docker, Kubernetes' containerd), like \"SIGQUIT\"; none: SIGTERM."),
        "_ocitool": attr.label(default = _OCITOOL, executable = True, cfg = "exec"),
        "_linux": attr.label(default = "@platforms//os:linux"),
        "_x86_64": attr.label(default = "@platforms//cpu:x86_64"),
    },
)

def _oci_load_impl(ctx):
    tarball = ctx.actions.declare_file(ctx.label.name + "/tarball.tar")
    args = ctx.actions.args()
    args.add("docker-archive")
    args.add("--image", ctx.file.image.path)
    args.add_all(ctx.attr.repo_tags, before_each = "--tag")
    args.add("--out", tarball)
    ctx.actions.run(
        executable = ctx.executable._ocitool,
        arguments = [args],
        inputs = [ctx.file.image],
        outputs = [tarball],
        mnemonic = "OciDockerArchive",
        progress_message = "Writing docker-archive for %{label}",
    )
    loader = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.expand_template(
        template = ctx.file._loader,
        output = loader,
        substitutions = {
            "{{TARBALL}}": tarball.short_path,
            "{{TAGS}}": " ".join(ctx.attr.repo_tags),
        },
        is_executable = True,
    )
    return [DefaultInfo(
        executable = loader,
        files = depset([tarball]),
        runfiles = ctx.runfiles(files = [tarball]),
    )]

oci_load = rule(
    implementation = _oci_load_impl,
    doc = "`bazel run` loads the image into the Docker engine under repo_tags.",
    executable = True,
    attrs = {
        "image": attr.label(allow_single_file = True, mandatory = True),
        "repo_tags": attr.string_list(mandatory = True),
        "_ocitool": attr.label(default = _OCITOOL, executable = True, cfg = "exec"),
        "_loader": attr.label(default = Label("//tools/rules/oci:load.sh.tpl"), allow_single_file = True),
    },
)

def _oci_push_impl(ctx):
    launcher = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.expand_template(
        template = ctx.file._launcher,
        output = launcher,
        substitutions = {
            "{{IMAGE}}": ctx.file.image.short_path,
            "{{OCITOOL}}": ctx.executable._ocitool.short_path,
            "{{REPOSITORY}}": ctx.attr.repository,
            "{{TAGS}}": " ".join(ctx.attr.remote_tags),
        },
        is_executable = True,
    )
    return [DefaultInfo(
        executable = launcher,
        runfiles = ctx.runfiles(files = [ctx.file.image]).merge(ctx.attr._ocitool[DefaultInfo].default_runfiles),
    )]

oci_push = rule(
    implementation = _oci_push_impl,
    doc = """`bazel run` pushes the image by digest, tags it with remote_tags, and prints REPO@sha256:...

rules_oci's `oci_push(image, repository, remote_tags)`, with one difference: `repository` is the
path in the registry (like "cache-platform/go-service") and the registry comes from the variable
OCI_REGISTRY at run time, so no registry is ever written in the repo; `-- --repository R` replaces
both, as rules_oci's does.""",
    executable = True,
    attrs = {
        "image": attr.label(allow_single_file = True, mandatory = True, doc = "An oci_image."),
        "repository": attr.string(mandatory = True, doc = "Repository path, prefixed by $OCI_REGISTRY/."),
        "remote_tags": attr.string_list(doc = "Tags to point at the pushed digest."),
        "_ocitool": attr.label(default = _OCITOOL, executable = True, cfg = "target"),
        "_launcher": attr.label(default = Label("//tools/rules/oci:push.sh.tpl"), allow_single_file = True),
    },
)
