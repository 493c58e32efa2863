"""The `debian_packages` module extension: one repository per set of a Debian lock file.

    debian_packages = use_extension("//tools/rules/debian:extensions.bzl", "debian_packages")
    debian_packages.lock(lock = "//tools/rules/debian:packages.lock.json")
    debian_packages.tree(name = "python3_13", lock = "//tools/rules/debian:packages.lock.json",
                         sets = ["libc", "python"], executables = {"//tools/rules/python:python3.sh": "usr/bin/python3"})
    use_repo(debian_packages, "debian_base", "debian_libc", "debian_python", "python3_13", ...)

Set `python` of the lock becomes `@debian_python` (see repositories.bzl for what it holds); a
`tree` is some sets unpacked into one filesystem tree (a build tool run from the locked packages).
The lock is written by `tools/bazel run //tools/rules/debian:lock` from tools/rules/debian/packages.json.
"""

load(":repositories.bzl", "debian_package_set", "debian_tree")

_lock = tag_class(
    attrs = {
        "lock": attr.label(mandatory = True, doc = "A lock file written by tools/rules/debian/lock.py."),
    },
    doc = "Makes a repository `debian_<set>` for every set of `lock`.",
)

_tree = tag_class(
    attrs = {
        "name": attr.string(mandatory = True, doc = "The repository's name."),
        "lock": attr.label(mandatory = True, doc = "A lock file written by tools/rules/debian/lock.py."),
        "sets": attr.string_list(mandatory = True, doc = "The sets unpacked into the tree."),
        "executables": attr.label_keyed_string_dict(doc = "File -> path in the tree (e.g. a launcher)."),
    },
    doc = "Makes a repository NAME: the packages of `sets`, unpacked into root/ (debian_tree).",
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
        for tag in mod.tags.tree:
            if tag.name in made:
                fail("debian_packages: repository %r is defined twice" % tag.name)
            made[tag.name] = tag.lock
            debian_tree(name = tag.name, lock = tag.lock, sets = tag.sets, executables = tag.executables)

debian_packages = module_extension(
    implementation = _debian_packages_impl,
    tag_classes = {"lock": _lock, "tree": _tree},
    doc = "Debian package sets, pinned by a lock file, as repositories of filesystem tars or trees.",
)
