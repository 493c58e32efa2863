"""The `debian_packages` module extension: one repository per set of a Debian lock file.

    debian_packages = use_extension("//tools/debian:extensions.bzl", "debian_packages")
    debian_packages.lock(lock = "//tools/debian:packages.lock.json")
    use_repo(debian_packages, "debian_base", "debian_libc", "debian_python", ...)

Set `python` of the lock becomes `@debian_python` (see repositories.bzl for what it holds).
The lock is written by `tools/bazel run //tools/debian:lock` from tools/debian/packages.json.
"""

load(":repositories.bzl", "debian_package_set")

_lock = tag_class(
    attrs = {
        "lock": attr.label(mandatory = True, doc = "A lock file written by tools/debian/lock.py."),
    },
    doc = "Makes a repository `debian_<set>` for every set of `lock`.",
)

def _debian_packages_impl(module_ctx):
    made = {}
    for mod in module_ctx.modules:
        for tag in mod.tags.lock:
            lock = json.decode(module_ctx.read(module_ctx.path(tag.lock)))
            for set_name in sorted(lock.get("sets", {})):
                name = "debian_" + set_name
                if name in made:
                    fail("debian_packages: two locks define set %r (%s and %s)" % (set_name, made[name], tag.lock))
                made[name] = tag.lock
                debian_package_set(name = name, lock = tag.lock, set_name = set_name)

debian_packages = module_extension(
    implementation = _debian_packages_impl,
    tag_classes = {"lock": _lock},
    doc = "Debian package sets, pinned by a lock file, as repositories of filesystem tars.",
)
