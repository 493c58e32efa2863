"""`debian_package_set`: one set of tools/rules/debian/packages.lock.json as a repository of filesystem tars.

The repository holds, for each package of the set, in lock order (by name):
  <pool basename>.deb   the package, checked against the sha256 in the lock by ctx.download
  <pool basename>.tar   its filesystem tree (`dpkg-deb --fsys-tarfile`), what debian_layer merges,
                        plus var/lib/dpkg/status.d/<name>, its control fields
and `packages.txt` (name=version lines, sorted: provenance for an image label or an SBOM),
`defs.bzl` (PACKAGES, LAYERS_ON), and, when the set has ca-certificates, `ca-certificates.crt`:
the bundle update-ca-certificates would write to /etc/ssl/certs at install time (a .deb ships only
the PEM files; a layer built from tars runs no maintainer script).

Targets: `:tars` and `:debs` (filegroups in lock order), every file by name (exports_files).

`debian_tree` (below) unpacks some sets into one filesystem tree instead, for a build tool run from
the locked packages: the build's Python (@python3_13, tools/rules/python).

The mirror is never stored: mirror.sh finds it, $DEBIAN_MIRROR, else the first `/debian` URI of
the apt sources of the machine Bazel runs on (inside tools/bazel's chroot, /etc/apt/sources.list).
It is only where files are fetched from; what is fetched is pinned by sha256, and Bazel's
repository cache serves a file it already has without asking any mirror.
"""

def find_mirror(ctx):
    """The Debian mirror: mirror.sh's answer ($DEBIAN_MIRROR, else the machine's apt sources).

    Args:
      ctx: the repository_ctx.

    Returns:
      The mirror's URL, without a trailing slash. Fails with mirror.sh's one line without one.
    """
    result = ctx.execute(
        [ctx.path(Label("//tools/rules/debian:mirror.sh"))],
        environment = {"DEBIAN_MIRROR": ctx.os.environ.get("DEBIAN_MIRROR", "")},
        quiet = True,
    )
    if result.return_code != 0:
        fail("debian_package_set: " + result.stderr.strip())
    return result.stdout.strip()

def _basename(filename):
    base = filename.rpartition("/")[2]
    if not base.endswith(".deb"):
        fail("debian_package_set: %s is not a .deb" % filename)
    return base[:-len(".deb")]

def _sh(ctx, script, what):
    result = ctx.execute(["sh", "-c", script], quiet = True)
    if result.return_code != 0:
        fail("debian_package_set %s: %s failed: %s" % (ctx.attr.set_name, what, result.stderr.strip()))

def _debian_package_set_impl(ctx):
    lock = json.decode(ctx.read(ctx.attr.lock))
    sets = lock["sets"]
    if ctx.attr.set_name not in sets:
        fail("debian_package_set: no set %r in %s (sets: %s)" % (
            ctx.attr.set_name,
            ctx.attr.lock,
            ", ".join(sorted(sets)),
        ))
    entry = sets[ctx.attr.set_name]
    packages = entry["packages"]

    # dpkg-deb comes with dpkg: it is in tools/bazel's Debian sid chroot and on any Debian/Ubuntu host.
    if not ctx.which("dpkg-deb"):
        fail("debian_package_set: dpkg-deb not found on PATH: it turns .deb files into tars. " +
             "Run Bazel through tools/bazel (its Debian chroot has it) or `apt-get install dpkg`.")
    mirror = find_mirror(ctx)

    names = []
    for i, pkg in enumerate(packages):
        if not pkg["filename"].startswith("pool/"):
            fail("debian_package_set: %s: filename %r is not a pool path" % (pkg["name"], pkg["filename"]))
        base = _basename(pkg["filename"])
        ctx.report_progress("%s: %d/%d %s" % (ctx.attr.set_name, i + 1, len(packages), base))
        ctx.download(
            url = mirror + "/" + pkg["filename"],
            sha256 = pkg["sha256"],
            output = base + ".deb",
        )
        names.append(base)

    if names:
        # Each tar also records its package as distroless images do, in
        # /var/lib/dpkg/status.d/<name> (the package's control fields): image scanners (syft,
        # Grype, Trivy) and //tools/rules/sbom's test read it. dpkg's own database is not written:
        # no package manager runs in these images.
        _sh(
            ctx,
            "set -e; for n in %s; do " % " ".join(["'%s'" % n for n in names]) +
            'dpkg-deb --fsys-tarfile "$n.deb" > "$n.tar"; ' +
            'p="$(dpkg-deb --field "$n.deb" Package)"; rm -rf _status; mkdir -p _status/var/lib/dpkg/status.d; ' +
            'dpkg-deb --field "$n.deb" > "_status/var/lib/dpkg/status.d/$p"; ' +
            'tar -rf "$n.tar" -C _status --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=0644 ' +
            '"./var/lib/dpkg/status.d/$p"; done; rm -rf _status',
            "dpkg-deb --fsys-tarfile",
        )

    extra = ["packages.txt", "defs.bzl"]
    by_name = {pkg["name"]: _basename(pkg["filename"]) for pkg in packages}
    if "ca-certificates" in by_name:
        # What update-ca-certificates writes: the PEM files, sorted, each ending in a newline.
        _sh(
            ctx,
            "set -e; rm -rf _ca; mkdir _ca; tar -xf '%s.tar' -C _ca ./usr/share/ca-certificates/mozilla; " % by_name["ca-certificates"] +
            "LC_ALL=C; export LC_ALL; set -- _ca/usr/share/ca-certificates/mozilla/*.crt; " +
            '[ -f "$1" ]; awk 1 "$@" > ca-certificates.crt; rm -rf _ca',
            "building ca-certificates.crt",
        )
        extra.append("ca-certificates.crt")

    ctx.file("packages.txt", "".join(["%s=%s\n" % (p["name"], p["version"]) for p in packages]))
    ctx.file("defs.bzl", "\n".join([
        '"""Set %s of the Debian lock (generated by tools/rules/debian/repositories.bzl)."""' % ctx.attr.set_name,
        "",
        "# The sets whose layers this one goes on top of (their packages are left out of this set).",
        "LAYERS_ON = %s" % json.encode(entry.get("layers_on", [])),
        "",
        "# Package name -> Debian version.",
        "PACKAGES = {",
    ] + ['    "%s": "%s",' % (p["name"], p["version"]) for p in packages] + ["}", ""]))

    tars = ['"%s.tar"' % n for n in names]
    debs = ['"%s.deb"' % n for n in names]
    ctx.file("BUILD.bazel", "\n".join([
        "# Generated by @cache_platform//tools/rules/debian:repositories.bzl for set %s: do not edit." % ctx.attr.set_name,
        'package(default_visibility = ["//visibility:public"])',
        "",
        "exports_files([",
    ] + ["    %s," % f for f in tars + debs + ['"%s"' % e for e in extra]] + [
        "])",
        "",
        "# Filesystem tars, one per package, in lock order.",
        "filegroup(",
        '    name = "tars",',
        "    srcs = [",
    ] + ["        %s," % f for f in tars] + [
        "    ],",
        ")",
        "",
        "filegroup(",
        '    name = "debs",',
        "    srcs = [",
    ] + ["        %s," % f for f in debs] + [
        "    ],",
        ")",
        "",
    ]))

debian_package_set = repository_rule(
    implementation = _debian_package_set_impl,
    attrs = {
        "lock": attr.label(mandatory = True, allow_single_file = True, doc = "packages.lock.json"),
        "set_name": attr.string(mandatory = True, doc = "The set of the lock this repository holds."),
    },
    environ = ["DEBIAN_MIRROR"],
    doc = "One package set of a tools/rules/debian lock file, as .deb files and their filesystem tars.",
)

def _debian_tree_impl(ctx):
    """Unpacks every package of some sets of the lock into one filesystem tree, root/."""
    lock = json.decode(ctx.read(ctx.attr.lock))
    mirror = find_mirror(ctx)
    seen = {}
    for set_name in ctx.attr.sets:
        if set_name not in lock["sets"]:
            fail("debian_tree: no set %r in %s" % (set_name, ctx.attr.lock))
        for pkg in lock["sets"][set_name]["packages"]:
            if pkg["name"] in seen:
                continue
            seen[pkg["name"]] = True
            base = _basename(pkg["filename"])
            ctx.report_progress("unpacking %s" % base)

            # ctx.extract reads the .deb's ar archive and then its data.tar.*: no dpkg-deb needed.
            ctx.download(url = mirror + "/" + pkg["filename"], sha256 = pkg["sha256"], output = "_debs/%s.deb" % base)
            ctx.extract("_debs/%s.deb" % base, output = "_debs/" + base)
            data = [p for p in ctx.path("_debs/" + base).readdir() if p.basename.startswith("data.tar")]
            if len(data) != 1:
                fail("debian_tree: %s has no single data.tar member" % base)
            ctx.extract(data[0], output = "root")
    ctx.delete("_debs")

    # A link to an absolute path (say /etc/python3.13/sitecustomize.py) means that path in the
    # tree, not on the machine that runs Bazel: make it relative.
    result = ctx.execute(["sh", "-c", """set -e
cd root
find . -type l | while read -r link; do
  target="$(readlink "$link")"
  case "$target" in /*) ;; *) continue ;; esac
  up="$(dirname "$link" | sed -e 's|^\\./||' -e 's|[^/][^/]*|..|g')"
  [ "$(dirname "$link")" = . ] && up=.
  rm "$link"
  ln -s "$up$target" "$link"
done"""], quiet = True)
    if result.return_code != 0:
        fail("debian_tree: relinking absolute symlinks failed: " + result.stderr)
    for label, path in ctx.attr.executables.items():
        ctx.template("root/" + path.lstrip("/"), label, executable = True)

    ctx.file("BUILD.bazel", "\n".join([
        "# Generated by @cache_platform//tools/rules/debian:repositories.bzl (debian_tree): do not edit.",
        'package(default_visibility = ["//visibility:public"])',
        "",
        "# Sets %s of the lock, unpacked." % ", ".join(ctx.attr.sets),
        'filegroup(name = "files", srcs = glob(["root/**"], exclude = ["root/usr/share/doc/**", "root/usr/share/man/**"]))',
        "",
        "exports_files(%s)" % json.encode(sorted(["root/" + p.lstrip("/") for p in ctx.attr.executables.values()])),
        "",
    ]))

debian_tree = repository_rule(
    implementation = _debian_tree_impl,
    attrs = {
        "lock": attr.label(mandatory = True, allow_single_file = True, doc = "packages.lock.json"),
        "sets": attr.string_list(mandatory = True, doc = "Sets of the lock whose packages make up the tree."),
        "executables": attr.label_keyed_string_dict(allow_files = True, doc = "File -> its path in the tree (copied there, executable)."),
    },
    environ = ["DEBIAN_MIRROR"],
    doc = """The packages of some sets of a tools/rules/debian lock, unpacked into one tree, root/.

    Targets: `:files` (every file of the tree) and each of `executables` by its path (root/...).
    What a build runs from here is the very build of each package that the images ship.""",
)
